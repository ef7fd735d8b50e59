"""`pip install fsrun` alone runs a creator's one-graph ONNX model: a fresh virtual environment
with only the runtime (no torch importable) cuts the tf2onnx fixture into a package and scripts a
clip, with the same actions as `fsexport import` + `fsrun --model PKG` here.

Installing the runtime takes about 20 s from pip's cache (what the test command's own install
leaves there), so the environment is made once per session.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from fsexport.importers.config import ImportConfig
from fsexport.importers.doors import import_model
from fsrun import cli
from fsrun.files.funscript import read_funscript

from tests.runtime.videos import write_cfr

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "export" / "keras_fixtures" / "kecam_s_like.onnx"


@pytest.fixture(scope="session")
def runtime_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with `pip install ./runtime` and nothing else; its python."""
    home = tmp_path_factory.mktemp("runtime-only")
    # A copy of the source: building a wheel in place would leave build/ in the checkout.
    source = shutil.copytree(ROOT / "runtime", home / "src",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    python = home / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", str(source)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"pip install ./runtime failed: {done.stderr.strip()[-2000:]}")
    return python


def test_runtime_only_environment_has_no_framework(runtime_only: Path) -> None:
    probe = ("import importlib.util as u; "
             "print([m for m in ('torch', 'timm', 'torchvision', 'tensorflow', 'fsexport') "
             "if u.find_spec(m)])")
    done = subprocess.run([str(runtime_only), "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_fsrun_runs_an_onnx_model_like_fsexport_import(runtime_only: Path, tmp_path: Path) -> None:
    video = write_cfr(tmp_path / "clip.mp4", 30, 150, width=96, height=72)
    env = {**os.environ, "FSRUN_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([str(runtime_only), "-m", "fsrun.cli", str(video), "--model",
                            str(FIXTURE), "--raw", "-o", str(tmp_path / "door.funscript")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "fsrun: cut kecam_s_like.onnx into encoder and head" in first.stderr
    assert str(tmp_path / "cache" / "packages") in first.stderr
    again = subprocess.run([str(runtime_only), "-m", "fsrun.cli", str(video), "--model",
                            str(FIXTURE), "--raw", "-o", str(tmp_path / "again.funscript")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "cut " not in again.stderr  # reused, said nothing

    package = import_model(ImportConfig(source=FIXTURE, output=tmp_path, fp16=False,
                                        set_default=False), log=lambda _: None).path
    assert cli.main([str(video), "--model", str(package), "--raw", "--no-cache", "-q",
                     "-o", str(tmp_path / "import.funscript")]) == 0
    door = read_funscript(tmp_path / "door.funscript")["actions"]
    assert door == read_funscript(tmp_path / "import.funscript")["actions"]
    assert door == read_funscript(tmp_path / "again.funscript")["actions"]
    assert len({a["pos"] for a in door}) > 3


def test_a_file_outside_the_contract_is_exit_4_in_one_line(runtime_only: Path,
                                                           tmp_path: Path) -> None:
    video = write_cfr(tmp_path / "clip.mp4", 30, 30, width=64, height=48)
    fake = tmp_path / "notes.onnx"
    fake.write_text("not a model\n")
    done = subprocess.run([str(runtime_only), "-m", "fsrun.cli", str(video), "--model", str(fake)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FSRUN_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fsrun: error: {fake}: not a valid ONNX "
                                                   "model"), done.stderr


def test_no_torch_behind_fsexport_help_or_the_onnx_door() -> None:
    code = ("import sys\nfrom fsexport.cli import main\nfrom fsexport.importers import onnx_import\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', "
            "'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
