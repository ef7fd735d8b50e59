"""Helpers for the reliability tests: run the CLI in-process, copy packages, drop privileges."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from fsrun.cli import main


@dataclass
class CliResult:
    code: int  # exit code main() returned
    out: str  # stdout
    err: str  # stderr

    @property
    def last_line(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture
def fsrun_cli(capsys: pytest.CaptureFixture[str]):
    """Call `fsrun ARGS...` in this process (fast: no interpreter start, imports shared)."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def package_copy(demo_package: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny package that a test may break."""
    target = tmp_path / "pkg" / demo_package.name
    shutil.copytree(demo_package, target)
    return target


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block without root's power to ignore file permissions (no-op for other users)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def world_readable_tree(root: Path) -> None:
    """Let an unprivileged user read everything under root and walk down to it."""
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    parent = root.parent
    while parent != parent.parent:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, (mode & 0o7777) | 0o711)
        parent = parent.parent


HERE = Path(__file__).parent


def start_fsrun(args: list, env: dict, slow: bool = True):
    """`fsrun ARGS` in a process of its own (slow: every encoder batch delayed by
    $FSRUN_TEST_ENCODER_DELAY, so that runs overlap or can be stopped midway)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    script = [str(HERE / "slow_fsrun.py")] if slow else ["-m", "fsrun.cli"]
    return subprocess.Popen([sys.executable, *script, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def clean_actions_of(clip: Path, package: Path, folder: Path) -> list:
    """The actions of a clean run of clip without the cache: what every case compares with."""
    from fsrun.files.funscript import read_funscript  # noqa: PLC0415

    out = folder / "clean.funscript"
    run = start_fsrun([clip, "--model", package, "-o", out, "--no-cache"], dict(os.environ),
                      slow=False)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    return read_funscript(out)["actions"]
