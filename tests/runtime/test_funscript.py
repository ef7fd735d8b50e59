"""Funscript files: valid for players, written atomically, never overwritten without force."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fsrun.files import atomic
from fsrun.errors import InputError, OutputError
from fsrun.files.funscript import (build_funscript, default_output, read_funscript, validate_funscript,
                             write_funscript)
from fsrun.files.outputs import Protected

ACTIONS = [{"at": 0, "pos": 10}, {"at": 500, "pos": 90}, {"at": 1000, "pos": 10}]


def test_round_trip(tmp_path: Path) -> None:
    doc = build_funscript(ACTIONS, {"generator": {"name": "fsrun"}})
    path = write_funscript(tmp_path / "a.funscript", doc)
    back = read_funscript(path)
    assert back["actions"] == ACTIONS
    assert back["version"] == "1.0" and back["range"] == 100 and back["inverted"] is False
    assert back["metadata"]["generator"]["name"] == "fsrun"
    assert json.loads(path.read_text())["actions"][1] == {"at": 500, "pos": 90}


def test_default_output_is_next_to_the_video() -> None:
    assert default_output(Path("/v/clip.mp4")) == Path("/v/clip.funscript")


@pytest.mark.parametrize("bad, fragment", [
    ([{"at": 0, "pos": 10}, {"at": 0, "pos": 20}], "not after"),
    ([{"at": 10, "pos": 10}, {"at": 5, "pos": 20}], "not after"),
    ([{"at": 0, "pos": 101}], "pos"),
    ([{"at": 0.5, "pos": 10}], "at must be"),
    ([{"at": -1, "pos": 10}], "at must be"),
    ([{"at": 0, "pos": 1.5}], "pos"),
    ([{"at": 0, "pos": True}], "pos"),
])
def test_validation_finds_problems(bad: list, fragment: str) -> None:
    doc = {"version": "1.0", "inverted": False, "range": 100, "actions": bad}
    problems = validate_funscript(doc)
    assert problems and fragment in problems[0]
    with pytest.raises(ValueError):
        build_funscript(bad, {})


def test_reader_rejects_invalid_files(tmp_path: Path) -> None:
    (tmp_path / "x.funscript").write_text("{not json")
    with pytest.raises(InputError):
        read_funscript(tmp_path / "x.funscript")
    (tmp_path / "y.funscript").write_text(json.dumps({"version": "1.0", "actions": []}))
    with pytest.raises(InputError, match="inverted"):
        read_funscript(tmp_path / "y.funscript")


def test_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    path = tmp_path / "a.funscript"
    write_funscript(path, build_funscript(ACTIONS[:2], {"by": "hand"}))
    precious = path.read_bytes()
    with pytest.raises(OutputError, match="--force"):
        write_funscript(path, build_funscript(ACTIONS, {}))
    assert path.read_bytes() == precious
    write_funscript(path, build_funscript(ACTIONS, {}), force=True)
    assert read_funscript(path)["actions"] == ACTIONS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.funscript"]


@pytest.mark.parametrize("content", [b"precious notes", b"", b"\x00\x00\x00\x18ftypisom",
                                     b'{"not": "a script"}', b"[1, 2, 3]"])
def test_force_replaces_funscripts_only(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "a.funscript"
    path.write_bytes(content)
    with pytest.raises(OutputError, match="exists and is not a funscript; --force only "
                                          "replaces funscripts"):
        write_funscript(path, build_funscript(ACTIONS, {}), force=True)
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["a.funscript"]


def test_output_never_replaces_a_protected_file(tmp_path: Path) -> None:
    """The input video, under any name that reaches it: itself, another spelling, a symlink,
    a hard link (on case-insensitive filesystems another case is the same file, too)."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom video bytes")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.mp4").symlink_to("clip.mp4")
    os.link(video, tmp_path / "hard.mp4")
    protected = Protected([video], "the input video")
    for name in ("clip.mp4", "sub/../clip.mp4", "link.mp4", "hard.mp4"):
        with pytest.raises(OutputError, match="is the input video"):
            write_funscript(tmp_path / name, build_funscript(ACTIONS, {}), force=True,
                            protect=protected)
        assert video.read_bytes().endswith(b"video bytes")
    assert (tmp_path / "link.mp4").is_symlink()
    write_funscript(tmp_path / "clip.funscript", build_funscript(ACTIONS, {}), protect=protected)


def test_truth_files_are_never_written(tmp_path: Path) -> None:
    truth = tmp_path / "clip.truth.funscript"
    with pytest.raises(OutputError, match="is a truth file"):
        write_funscript(truth, build_funscript(ACTIONS, {}))
    write_funscript(tmp_path / "clip.funscript", build_funscript(ACTIONS, {}))
    assert not truth.exists()


def test_file_appearing_during_the_write_is_not_clobbered(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.funscript"
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_text("written by someone else")
        real_link(src, dst)

    monkeypatch.setattr(atomic.os, "link", racing_link)
    with pytest.raises(OutputError):
        write_funscript(path, build_funscript(ACTIONS, {}))
    assert path.read_text() == "written by someone else"
    assert [p.name for p in tmp_path.iterdir()] == ["a.funscript"]  # temp file removed


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.funscript"
    write_funscript(path, build_funscript(ACTIONS, {}))
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match="No space"):
        write_funscript(path, build_funscript(ACTIONS[:1], {}), force=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.funscript"]


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_funscript(tmp_path / "nope" / "a.funscript", build_funscript(ACTIONS, {}))
