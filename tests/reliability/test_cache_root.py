"""One cache root: `--cache-dir X` (or $FSRUN_CACHE_DIR, else the user cache folder) holds
embeddings/, packages/ (models cut from .onnx files) and engines/ (TensorRT engines ONNX
Runtime builds); a run with --cache-dir leaves nothing in the user's own cache or config."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import badfiles
import edgefiles

from fsrun.config import CACHE_FOLDERS
from fsrun.run.plan import make_plan
from fsrun.run.request import SessionSpec


def test_cache_dir_holds_embeddings_and_packages_and_nothing_leaks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    clip = badfiles.write_video(tmp_path / "clip.mp4", count=45)
    model = edgefiles.tiny_onnx(tmp_path / "m.onnx", ["B", 60], size=32)
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items()
           if k not in ("FSRUN_CACHE_DIR", "FSRUN_CONFIG_DIR", "XDG_CACHE_HOME",
                        "XDG_CONFIG_HOME")}
    env["HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "fsrun.cli", str(clip), "--model", str(model),
                           "--cache-dir", str(root), "-o", str(tmp_path / "o.funscript")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir()) == ["embeddings", "locks", "packages"]
    assert [p.name for p in (root / "packages").iterdir() if p.name.endswith(".fsmodel")]
    assert [p for p in (root / "embeddings").iterdir() if p.is_dir()]
    # Nothing of fsrun's under the user's home (ONNX Runtime's own device-id files aside:
    # docs/architecture.md says where they go and why fsrun cannot stop them).
    assert not (home / ".cache" / "fsrun").exists() and not (home / ".config" / "fsrun").exists()
    assert set(CACHE_FOLDERS) == {"embeddings", "packages", "engines", "locks"}


def test_tensorrt_engines_go_under_the_cache_root(demo_package: Path, tmp_path: Path) -> None:
    plan = make_plan(SessionSpec(model=demo_package, cache_dir=tmp_path / "root"))
    from fsrun.model.package import load_package

    options = plan.backend_options(load_package(demo_package))
    assert Path(options.cache_dir).parent == tmp_path / "root" / "engines"
    assert Path(options.cache_dir).name == plan.model_hash[:16]
