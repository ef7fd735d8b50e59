"""A folder of short synthetic clips with their truth, and the studio serving it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the studio needs fsrun[studio]")

from fsrun.groundtruth.seeds import seed  # noqa: E402
from fsrun.groundtruth.synth.cli import write_clips  # noqa: E402
from fsrun.runconfig import RunConfig  # noqa: E402

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
        template = RunConfig(video=folder, model=demo_package, quiet=True, progress=False,
                             cache_dir=tmp_path / "cache")
        studio = Studio(folder, template, port=PORT)
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
