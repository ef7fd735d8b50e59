"""The studio with a model of two axes: the viewer draws, redraws, compares and saves each
axis on its own; the library lists each video's axis files; the queue writes them all."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the studio needs fsrun[studio]")

from fsrun.files.funscript import default_output, read_funscript, truth_path  # noqa: E402
from fsrun.run.request import SessionSpec  # noqa: E402

from tests.studio.conftest import PORT, token_headers, wait_for  # noqa: E402


@pytest.fixture
def two_axis_studio(axis_packages, roll_clip: Path, tmp_path: Path):
    from fsrun.studio.app import Studio, build_app  # noqa: PLC0415
    from starlette.testclient import TestClient  # noqa: PLC0415

    folder = tmp_path / "library"
    folder.mkdir()
    video = Path(shutil.copy(roll_clip, folder / "clip.mp4"))
    for axis in ("stroke", "roll"):
        shutil.copy(truth_path(roll_clip, axis), truth_path(video, axis))
    studio = Studio(folder, SessionSpec(model=axis_packages[1], cache_dir=tmp_path / "cache"),
                    port=PORT)
    client = TestClient(build_app(studio), base_url=f"http://127.0.0.1:{PORT}")
    yield studio, client, video
    studio.close()


def test_viewer_and_saving_per_axis(two_axis_studio) -> None:
    studio, client, video = two_axis_studio
    headers = token_headers(studio)
    stroke = client.get("/api/look?video=clip.mp4", headers=headers).json()
    roll = client.get("/api/look?video=clip.mp4&axis=roll", headers=headers).json()
    assert stroke["axes"] == ["stroke", "roll"] and roll["axis"] == "roll"
    assert roll["script_name"] == "clip.roll.funscript"
    assert roll["raw"]["at"] == stroke["raw"]["at"] and roll["raw"]["pos"] != stroke["raw"]["pos"]
    assert roll["truth"] == read_funscript(truth_path(video, "roll"))["actions"]
    redo = client.post("/api/redo", json={"video": "clip.mp4", "axis": "roll", "stride": 10,
                                          "options": {"raw": True}}, headers=headers).json()
    assert len(redo["actions"]) == len(roll["raw"]["at"])
    points = [{"at": 0, "pos": 50}, {"at": 900, "pos": 80}]
    saved = client.post("/api/save", json={"video": "clip.mp4", "axis": "roll",
                                           "actions": points}, headers=headers).json()
    assert saved["saved"] == "clip.roll.funscript"
    doc = read_funscript(default_output(video, "roll"))
    assert doc["actions"] == points and doc["metadata"]["axis"] == "roll"
    assert not default_output(video).exists()  # the stroke's file untouched
    again = client.post("/api/save", json={"video": "clip.mp4", "axis": "roll",
                                           "actions": points}, headers=headers)
    assert again.status_code == 409  # replacing needs the person's confirmation
    for bad in ({"axis": "wiggle"}, {"axis": 3}):
        answer = client.post("/api/save", json={"video": "clip.mp4", "actions": points, **bad},
                             headers=headers)
        assert answer.status_code == 400
    assert client.get("/api/look?video=clip.mp4&axis=pitch",
                      headers=headers).status_code == 400
    row = client.get("/api/library", headers=headers).json()["videos"][0]
    assert row["axes"]["roll"]["truth"] is True
    assert row["axes"]["roll"]["script"]["kind"] == "creator"  # edited by hand, not fsrun's


def test_the_queue_writes_every_axis(two_axis_studio) -> None:
    studio, client, video = two_axis_studio
    headers = token_headers(studio)
    studio.jobs.start()
    answer = client.post("/api/jobs", json={"videos": ["clip.mp4"]}, headers=headers)
    assert answer.status_code == 200, answer.text

    def finished():
        jobs = client.get("/api/jobs", headers=headers).json()["jobs"]
        return jobs if jobs and jobs[0]["status"] not in ("queued", "running") else None

    jobs = wait_for(finished, timeout=60)
    assert jobs[0]["status"] == "done", jobs
    assert default_output(video).is_file() and default_output(video, "roll").is_file()
    row = client.get("/api/library", headers=headers).json()["videos"][0]
    assert row["axes"]["roll"]["script"]["kind"] == "fsrun"


def test_training_on_the_folders_labels_learns_the_labelled_axes(tmp_path: Path) -> None:
    from fsrun.studio.training import labelled_axes  # noqa: PLC0415

    (tmp_path / "a.truth.funscript").write_text("{}")
    assert labelled_axes(tmp_path) == ("stroke",)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.roll.truth.funscript").write_text("{}")
    (tmp_path / "c.pitch.funscript").write_text("{}")  # a script, not a label
    assert labelled_axes(tmp_path) == ("stroke", "roll")
