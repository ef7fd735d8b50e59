"""A folder of short synthetic clips with their truth, and the studio serving it."""
from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("starlette", reason="the studio needs fsrun[studio]")

from fsrun.groundtruth.seeds import seed  # noqa: E402
from fsrun.groundtruth.synth.cli import write_clips  # noqa: E402
from fsrun.run.request import SessionSpec  # noqa: E402

PORT = 8765  # the address the test client sends as Host


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 3 s clips (96x72, 30 fps H.264) with VIDEO.truth.funscript, made once."""
    folder = tmp_path_factory.mktemp("studio-clips")
    write_clips(folder, 3, 3.0, ["30"], ["h264"], seed("tests-studio"), (96, 72))
    return folder


@pytest.fixture
def library(clips: Path, tmp_path: Path) -> Path:
    """A private copy of the clips: a test may write scripts and state into it."""
    import shutil  # noqa: PLC0415

    target = tmp_path / "library"
    shutil.copytree(clips, target)
    return target


@pytest.fixture
def make_studio(demo_package: Path, tmp_path: Path):
    """Studio(folder) on the demo model with the worker running; closed after the test."""
    from fsrun.studio.app import Studio, build_app  # noqa: PLC0415
    from starlette.testclient import TestClient  # noqa: PLC0415

    made = []

    def make(folder: Path, start: bool = True):
        studio = Studio(folder, SessionSpec(model=demo_package, cache_dir=tmp_path / "cache"),
                        port=PORT)
        if start:
            studio.jobs.start()
        client = TestClient(build_app(studio), base_url=f"http://127.0.0.1:{PORT}")
        made.append(studio)
        return studio, client

    yield make
    for studio in made:
        studio.close()


def wait_for(check, timeout: float = 60.0, every: float = 0.1):
    """check()'s first truthy value within timeout, else the test fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"not within {timeout:g} s")


def videos_in(folder: Path) -> list[str]:
    """The library's videos, as the studio names them (relative, sorted)."""
    return sorted(p.name for p in folder.glob("*.mp4"))


def token_headers(studio) -> dict[str, str]:
    return {"x-studio-token": studio.token}


@contextlib.contextmanager
def serve(folder: Path, package: Path, cache: Path, *extra: str) -> Iterator[tuple[str, object]]:
    """`fsrun studio FOLDER --no-browser` in a process of its own: (the address it printed,
    with its token; the process). Stopped with Ctrl-C's signal afterwards, as a person would;
    a studio that does not stop fails the test."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fsrun.cli", "studio", str(folder), "--model", str(package),
         "--no-browser", "--cache-dir", str(cache), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        found = re.search(r"http://\S+/\?token=\S+", line)
        assert found, f"no address in {line!r}: {server.stderr.read() if server.poll() else ''}"
        yield found.group(0), server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("the studio did not stop on Ctrl-C")
