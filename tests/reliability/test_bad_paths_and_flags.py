"""The bad-input matrix for output paths, flags and folders: every case runs `fsrun` in a work
folder and pins its exit code, its message and the exact files left there afterwards.

File kinds (empty, cut off, damaged, odd videos and broken model packages) are in
test_bad_inputs.py; together the two files are the whole matrix.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import badfiles
import pytest
from conftest import unprivileged, world_readable_tree

from fsrun.files.funscript import read_funscript

FUNSCRIPT = json.dumps({"version": "1.0", "inverted": False, "range": 100,
                        "actions": [{"at": 0, "pos": 10}, {"at": 500, "pos": 90}]})


def _make(work: Path, spec: str) -> None:
    """NAME=KIND: video, funscript, text, json, empty (0 bytes), dir, symlink:TARGET,
    hardlink:TARGET."""
    name, kind = spec.split("=", 1)
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "video":
        badfiles.write_video(path, count=20)
    elif kind == "funscript":
        path.write_text(FUNSCRIPT, encoding="utf-8")
    elif kind == "text":
        path.write_text("my own notes, not a script\n", encoding="utf-8")
    elif kind == "json":
        path.write_text('{"an": "old report"}\n', encoding="utf-8")
    elif kind == "report":
        path.write_text('{"fsrun_report": 1, "status": "ok"}\n', encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "dir":
        path.mkdir()
    elif kind.startswith("symlink:"):
        path.symlink_to(kind.split(":", 1)[1])
    elif kind.startswith("hardlink:"):
        os.link(work / kind.split(":", 1)[1], path)
    else:
        raise ValueError(kind)


def _files(work: Path) -> list[str]:
    """Every file (and link) under the work folder, hidden ones included, relative, sorted."""
    found = []
    for folder, dirs, names in os.walk(work):
        for name in names + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            found.append((Path(folder) / name).relative_to(work).as_posix())
    return sorted(found)


def _failed_report(code: int, cause: str) -> Callable[[Path], None]:
    def check(work: Path) -> None:
        report = json.loads((work / "r.json").read_text(encoding="utf-8"))
        assert report["status"] == "failed" and report["exit_code"] == code
        assert cause in report["error"] and report["video"].endswith("empty.mp4")
    return check


def _is_this_runs_report(path: Path) -> None:
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["fsrun_report"] == 1 and report["video"] == "clip.mp4" and report["frames"] > 0


def _replaced_by_fsrun(name: str) -> Callable[[Path], None]:
    def check(work: Path) -> None:
        assert read_funscript(work / name)["metadata"]["generator"]["name"] == "fsrun"
    return check


@dataclass(frozen=True)
class Case:
    args: str  # the command line after `fsrun`, run inside the work folder
    code: int  # exit code
    message: str  # the last line of stderr after "fsrun: error: " (a failure), or in it (exit 0)
    left: str  # every file in the work folder afterwards, space separated
    setup: tuple[str, ...] = ("clip.mp4=video",)  # NAME=KIND made before the run (see _make)
    replaced: tuple[str, ...] = ()  # files made by setup that the run may rewrite
    locked: str | None = None  # folder made read-only; the run is then unprivileged
    check: Callable[[Path], None] | None = None  # more to check in the work folder


VIDEO = ("clip.mp4=video",)
MATRIX: dict[str, Case] = {
    # --- the funscript output --------------------------------------------------------------
    "default_output": Case("clip.mp4", 0, "wrote clip.funscript", "clip.funscript clip.mp4"),
    "output_is_the_input": Case("clip.mp4 -o clip.mp4", 5,
                                "clip.mp4 is the input video; choose another path", "clip.mp4"),
    "output_is_the_input_force": Case("clip.mp4 -o clip.mp4 -f", 5,
                                      "clip.mp4 is the input video; choose another path",
                                      "clip.mp4"),
    "output_is_the_input_spelled_otherwise": Case(
        "clip.mp4 -o sub/../clip.mp4 -f", 5,
        "sub/../clip.mp4 is the input video clip.mp4; choose another path",
        "clip.mp4", (*VIDEO, "sub=dir")),
    "output_is_a_symlink_to_the_input": Case(
        "clip.mp4 -o link.mp4 -f", 5,
        "link.mp4 is the input video clip.mp4; choose another path",
        "clip.mp4 link.mp4", (*VIDEO, "link.mp4=symlink:clip.mp4")),
    "output_is_a_hard_link_to_the_input": Case(
        "clip.mp4 -o hard.mp4 -f", 5,
        "hard.mp4 is the input video clip.mp4; choose another path",
        "clip.mp4 hard.mp4", (*VIDEO, "hard.mp4=hardlink:clip.mp4")),
    "input_is_a_symlink_output_its_target": Case(
        "link.mp4 -o clip.mp4 -f", 5,
        "clip.mp4 is the input video link.mp4; choose another path",
        "clip.mp4 link.mp4", (*VIDEO, "link.mp4=symlink:clip.mp4")),
    "output_is_another_video_force": Case(
        "clip.mp4 -o other.mp4 -f", 5,
        "other.mp4 exists and is not a funscript; --force only replaces funscripts",
        "clip.mp4 other.mp4", (*VIDEO, "other.mp4=video")),
    "output_is_a_text_file_force": Case(
        "clip.mp4 -o notes.txt -f", 5,
        "notes.txt exists and is not a funscript; --force only replaces funscripts",
        "clip.mp4 notes.txt", (*VIDEO, "notes.txt=text")),
    "funscript_name_holds_text_force": Case(
        "clip.mp4 -f", 5,
        "clip.funscript exists and is not a funscript; --force only replaces funscripts",
        "clip.funscript clip.mp4", (*VIDEO, "clip.funscript=text")),
    "existing_funscript": Case(
        "clip.mp4", 5, "clip.funscript exists; use --force to overwrite it",
        "clip.funscript clip.mp4", (*VIDEO, "clip.funscript=funscript")),
    "existing_funscript_force": Case(
        "clip.mp4 -f", 0, "wrote clip.funscript", "clip.funscript clip.mp4",
        (*VIDEO, "clip.funscript=funscript"), replaced=("clip.funscript",),
        check=_replaced_by_fsrun("clip.funscript")),
    "funscript_name_is_a_folder_force": Case(
        "clip.mp4 -f", 5, "clip.funscript is a directory", "clip.mp4",
        (*VIDEO, "clip.funscript=dir")),
    "output_is_a_folder": Case("clip.mp4 -o sub", 2,
                               "Error: Invalid value for '--output' / '-o': File 'sub' is a "
                               "directory.", "clip.mp4",
                               (*VIDEO, "sub=dir")),
    "output_folder_missing": Case("clip.mp4 -o missing/x.funscript", 5,
                                  "missing: output folder does not exist", "clip.mp4"),
    "output_folder_read_only": Case("clip.mp4 -o locked/x.funscript --no-cache", 5,
                                    "locked: cannot write there (Permission denied)",
                                    "clip.mp4", (*VIDEO, "locked=dir"), locked="locked"),
    # --- truth files (fsrun synth, training labels) -----------------------------------------
    "truth_file_beside_the_video": Case(
        "clip.mp4", 0, "wrote clip.funscript", "clip.funscript clip.mp4 clip.truth.funscript",
        (*VIDEO, "clip.truth.funscript=funscript")),
    "output_is_a_truth_file_force": Case(
        "clip.mp4 -o clip.truth.funscript -f", 5,
        "clip.truth.funscript is a truth file (known motion, for training); fsrun never "
        "writes one: choose another --output",
        "clip.mp4 clip.truth.funscript", (*VIDEO, "clip.truth.funscript=funscript")),
    # --- the report --------------------------------------------------------------------------
    "report_is_the_input": Case("clip.mp4 --report clip.mp4", 5,
                                "clip.mp4 is the input video; choose another path",
                                "clip.mp4"),
    "report_is_the_funscript": Case("clip.mp4 --report clip.funscript", 5,
                                    "clip.funscript is also the funscript output; choose "
                                    "another --report", "clip.mp4"),
    "report_is_a_text_file": Case("clip.mp4 --report notes.txt", 5,
                                  "notes.txt exists and is not an fsrun report; choose "
                                  "another --report",
                                  "clip.mp4 notes.txt", (*VIDEO, "notes.txt=text")),
    "report_is_other_json": Case("clip.mp4 --report old.json", 5,
                                 "old.json exists and is not an fsrun report; choose another "
                                 "--report", "clip.mp4 old.json", (*VIDEO, "old.json=json")),
    "report_is_a_truth_file": Case(
        "clip.mp4 --report clip.truth.funscript", 5,
        "clip.truth.funscript exists and is not an fsrun report; choose another --report",
        "clip.mp4 clip.truth.funscript", (*VIDEO, "clip.truth.funscript=funscript")),
    "report_is_a_creators_funscript": Case(
        "clip.mp4 -o out.funscript --report clip.funscript", 5,
        "clip.funscript exists and is not an fsrun report; choose another --report",
        "clip.funscript clip.mp4", (*VIDEO, "clip.funscript=funscript")),
    "report_replaces_an_fsrun_report": Case(
        "clip.mp4 --report old.json", 0, "wrote clip.funscript",
        "clip.funscript clip.mp4 old.json", (*VIDEO, "old.json=report"), replaced=("old.json",),
        check=lambda work: _is_this_runs_report(work / "old.json")),
    "report_in_a_new_folder": Case("clip.mp4 --report new/r.json", 0, "wrote clip.funscript",
                                   "clip.funscript clip.mp4 new/r.json"),
    "report_is_a_folder": Case("clip.mp4 --report sub", 2,
                               "Error: Invalid value for '--report': File 'sub' is a directory.",
                               "clip.mp4",
                               (*VIDEO, "sub=dir")),
    "report_folder_read_only": Case("clip.mp4 --report locked/r.json --no-cache", 5,
                                    "locked: cannot write there (Permission denied)",
                                    "clip.mp4", (*VIDEO, "locked=dir"), locked="locked"),
    "failing_run_writes_its_report": Case(
        "empty.mp4 --report r.json", 3, "empty.mp4: empty file (0 bytes)", "empty.mp4 r.json",
        ("empty.mp4=empty",), check=_failed_report(3, "empty file (0 bytes)")),
    # --- the cache folder --------------------------------------------------------------------
    "cache_folder_read_only": Case("clip.mp4 --cache-dir locked/cache", 0,
                                   "cannot use the embedding cache (locked/cache/embeddings: "
                                   "Permission denied); going on without it",
                                   "clip.funscript clip.mp4", (*VIDEO, "locked=dir"),
                                   locked="locked"),
    "cache_folder_is_a_file": Case("clip.mp4 --cache-dir notes.txt", 2,
                                   "Error: Invalid value for '--cache-dir': Directory "
                                   "'notes.txt' is a file.", "clip.mp4 notes.txt",
                                   (*VIDEO, "notes.txt=text")),
    # --- flags -------------------------------------------------------------------------------
    "offset_empties_the_script": Case(
        "clip.mp4 --offset -100000", 2,
        "--offset -100000 ms moves every action before 0 (clip.mp4 lasts 0.7 s)", "clip.mp4"),
    "offset_drops_the_start": Case(
        "clip.mp4 --offset -200 --raw", 0,
        "--offset -200 ms moves the first 0.2 s before 0: those points are dropped",
        "clip.funscript clip.mp4"),
    "offset_past_the_end": Case(
        "clip.mp4 --offset 100000", 2,
        "--offset 100000 ms moves every action past the end of clip.mp4 (0.7 s)", "clip.mp4"),
    "min_amplitude_over_100": Case(
        "clip.mp4 --min-amplitude 200", 2,
        "Error: Invalid value for '--min-amplitude': 200.0 is not in the range 0<=x<=100.",
        "clip.mp4"),
    "stride_longer_than_a_window": Case(
        "clip.mp4 --stride 61", 2,
        "--stride must be between 1 and the window length 60, got 61", "clip.mp4"),
    "start_past_the_end": Case("clip.mp4 --start 60", 2,
                               "--start 60 s is past the end of clip.mp4 (0.7 s)",
                               "clip.mp4"),
    "missing_video": Case("none.mp4", 3, "none.mp4: no such video file", "clip.mp4"),
    # --- folders -----------------------------------------------------------------------------
    "folder": Case(".", 0, "1 video under .", "clip.funscript clip.mp4"),
    "folder_without_videos": Case(".", 3, ".: no videos found (looked for .mp4, .m4v, .mkv, "
                                  ".webm, .mov, .avi, .wmv, .flv, .ts, .m2ts, .mts, .mpg, "
                                  ".mpeg, .3gp, .ogv)",
                                  "notes.txt", ("notes.txt=text",)),
    "folder_with_output": Case(". -o x.funscript", 2,
                               "--output names one file; in folder mode each video gets "
                               "VIDEO.funscript beside it", "clip.mp4"),
    "folder_report_is_one_of_its_videos": Case(
        ". --report clip.mp4", 5, "clip.mp4 is a video being processed; choose another path",
        "clip.mp4"),
    "folder_report_read_only": Case(". --report locked/r.json --no-cache", 5,
                                    "locked: cannot write there (Permission denied)",
                                    "clip.mp4", (*VIDEO, "locked=dir"), locked="locked"),
    "folder_truth_file_beside_the_video": Case(
        ".", 0, "[1/1] ok      clip.mp4", "clip.funscript clip.mp4 clip.truth.funscript",
        (*VIDEO, "clip.truth.funscript=funscript")),
    "folder_outputs_are_its_own_videos": Case(
        ". --ext mp4,funscript -f", 1, "1 of 2 videos failed (see the table above)",
        "clip.funscript clip.mp4",
        (*VIDEO, "clip.funscript=funscript")),
    "folder_named_like_a_command": Case(
        "demo", 2, "'demo' is both the `fsrun demo` command and ./demo here: write `fsrun "
        "./demo` (or `fsrun run demo`) for the path, `fsrun demo --` for the command",
        "demo/clip.mp4",
        ("demo/clip.mp4=video",)),
    "folder_named_like_a_command_as_a_path": Case(
        "./demo", 0, "1 video under demo", "demo/clip.funscript demo/clip.mp4",
        ("demo/clip.mp4=video",)),
}


def _with_axis_files(spec: Case, package: Path) -> list[str]:
    """The files a case leaves, with the sibling of every script the run wrote on each axis
    beyond the stroke that the package writes (VIDEO.roll.funscript beside VIDEO.funscript)."""
    from fsrun.model.package import load_package  # noqa: PLC0415
    from fsrun.run.axis_outputs import axis_output  # noqa: PLC0415

    others = load_package(package).meta.axis_names[1:]
    made = {item.split("=", 1)[0] for item in spec.setup} - set(spec.replaced)
    left = spec.left.split()
    written = [name for name in left if name.endswith(".funscript") and name not in made
               and not name.endswith(".truth.funscript")]
    return sorted(left + [axis_output(Path(name), axis).as_posix()
                          for name in written for axis in others])


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_matrix(case: str, tmp_path: Path, package_copy: Path, fsrun_cli,
                monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MATRIX[case]
    work = tmp_path / "work"
    work.mkdir()
    for item in spec.setup:
        _make(work, item)
    before = {name: (work / name).read_bytes() for name in _files(work)
              if (work / name).is_file() and name not in spec.replaced}
    cache = tmp_path / "cache"
    monkeypatch.setenv("FSRUN_CACHE_DIR", str(cache))
    monkeypatch.chdir(work)
    args = [*shlex.split(spec.args), "--model", str(package_copy)]
    if spec.locked is None:
        result = fsrun_cli(*args)
    else:
        world_readable_tree(tmp_path)
        os.chmod(work, 0o777)  # the unprivileged run may write beside the video
        os.chmod(work / spec.locked, 0o555)
        try:
            with unprivileged():
                result = fsrun_cli(*args)
        finally:
            os.chmod(work / spec.locked, 0o755)

    assert result.code == spec.code, result.err
    assert "Traceback" not in result.err
    if spec.code == 0:
        assert spec.message in result.err, result.err
    else:  # the whole last line: fsrun's own errors, or click's for option values
        prefix = "" if spec.message.startswith("Error: ") else "fsrun: error: "
        assert result.last_line == prefix + spec.message
    assert _files(work) == _with_axis_files(spec, package_copy)
    for name, data in before.items():  # nothing that was there is changed or lost
        assert (work / name).read_bytes() == data, name
    if spec.code not in (0, 1, 3):  # refused before any work: nothing decoded or cached
        assert not list(cache.glob("embeddings/*")), case
    if spec.check is not None:
        spec.check(work)
