"""fsrun with a model of several axes: one funscript per axis (or one 1.1 file), the stroke
exactly what a stroke-only model writes, and the rules every driver shares."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fsrun import cli
from fsrun.axes import AXES, axis_of, parse_axes
from fsrun.errors import ModelError, UsageError
from fsrun.files.funscript import default_output, read_funscript, truth_path, validate_funscript
from fsrun.model.package import load_package
from fsrun.run.axis_outputs import axis_output


def _valid(path: Path) -> dict:
    doc = read_funscript(path)
    assert validate_funscript(doc) == []
    ats = [a["at"] for a in doc["actions"]]
    assert ats == sorted(set(ats)) and all(isinstance(a, int) for a in ats)
    assert all(isinstance(a["pos"], int) and 0 <= a["pos"] <= 100 for a in doc["actions"])
    return doc


def _copy(video: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(video, folder / video.name))


def test_names_of_axes_and_their_files(tmp_path: Path) -> None:
    assert parse_axes("stroke, roll") == ("stroke", "roll")
    for bad in ("stroke,wiggle", "roll,roll", ""):
        with pytest.raises(UsageError):
            parse_axes(bad)
    video = tmp_path / "clip.mp4"
    assert default_output(video, "roll").name == "clip.roll.funscript"
    assert truth_path(video, "roll").name == "clip.roll.truth.funscript"
    assert axis_output(tmp_path / "out.funscript", "pitch").name == "out.pitch.funscript"
    assert axis_output(tmp_path / "out.json", "roll").name == "out.roll.json"
    assert axis_of("clip.roll.funscript") == "roll" and axis_of("clip.funscript") == "stroke"
    assert axis_of("clip.roll.truth.funscript") == "roll"
    assert {a.tcode for a in AXES.values()} == {"L0", "L1", "L2", "R0", "R1", "R2"}


def test_one_file_per_axis_and_the_stroke_unchanged(axis_packages, roll_clip: Path,
                                                    tmp_path: Path) -> None:
    one, two = axis_packages
    assert load_package(two).meta.axes == ["stroke", "roll"]
    assert load_package(one).meta.axes is None
    assert "axes" not in json.loads((one / "meta.json").read_text())  # as it always was
    single = _copy(roll_clip, tmp_path / "one")
    double = _copy(roll_clip, tmp_path / "two")
    assert cli.main([str(single), "-m", str(one), "-q", "--no-cache"]) == 0
    report = tmp_path / "report.json"
    assert cli.main([str(double), "-m", str(two), "-q", "--no-cache", "--report",
                     str(report)]) == 0
    assert sorted(p.name for p in single.parent.iterdir()) == sorted(
        [single.name, default_output(single).name])
    stroke_one, stroke_two = _valid(default_output(single)), _valid(default_output(double))
    roll = _valid(default_output(double, "roll"))
    assert stroke_two["actions"] == stroke_one["actions"]  # the stroke: the same function
    assert "axis" not in stroke_one["metadata"] and "axes" not in stroke_one["metadata"]
    assert stroke_two["metadata"]["axis"] == "stroke" and roll["metadata"]["axis"] == "roll"
    assert roll["metadata"]["tcode"] == "R1" and stroke_two["metadata"]["axes"] == ["stroke",
                                                                                     "roll"]
    assert roll["actions"] != stroke_two["actions"]
    written = json.loads(report.read_text())
    assert written["axes"] == ["stroke", "roll"]
    assert written["outputs"]["roll"] == str(default_output(double, "roll"))


def test_axes_option_and_the_single_file_form(axis_packages, roll_clip: Path,
                                              tmp_path: Path, capsys) -> None:
    _, two = axis_packages
    video = _copy(roll_clip, tmp_path)
    assert cli.main([str(video), "-m", str(two), "--explain", "--axes", "roll"]) == 0
    explained = capsys.readouterr().out
    assert "axes:      roll (the model gives stroke, roll)" in explained
    assert str(default_output(video, "roll")) in explained
    assert cli.main([str(video), "-m", str(two), "-q", "--axes", "roll"]) == 0
    assert not default_output(video).exists() and default_output(video, "roll").is_file()
    assert cli.main([str(video), "-m", str(two), "-q", "--axes", "pitch"]) == 2
    assert cli.main([str(video), "-m", str(two), "-q", "--axes", "wiggle"]) == 2
    both = tmp_path / "both.funscript"
    assert cli.main([str(video), "-m", str(two), "-q", "--multi-axis-file", "-o",
                     str(both)]) == 0
    doc = _valid(both)
    assert [a["id"] for a in doc["axes"]] == ["R1"]
    assert doc["axes"][0]["actions"] == read_funscript(default_output(video, "roll"))["actions"]
    assert not (tmp_path / "both.roll.funscript").exists()
    refused = tmp_path / "refused.funscript"
    assert cli.main([str(video), "-m", str(two), "-q", "--multi-axis-file", "--axes", "roll",
                     "-o", str(refused)]) == 2
    assert not refused.exists()


def test_a_stroke_only_model_has_no_roll(axis_packages, roll_clip: Path,
                                         tmp_path: Path) -> None:
    one, _ = axis_packages
    video = _copy(roll_clip, tmp_path)
    assert cli.main([str(video), "-m", str(one), "-q", "--axes", "roll"]) == 2
    assert not default_output(video, "roll").exists()


def test_an_existing_axis_file_is_refused_without_force(axis_packages, roll_clip: Path,
                                                        tmp_path: Path) -> None:
    _, two = axis_packages
    video = _copy(roll_clip, tmp_path)
    default_output(video, "roll").write_text('{"actions": []}')
    assert cli.main([str(video), "-m", str(two), "-q"]) == 5
    assert not default_output(video).exists()  # nothing half-written
    assert cli.main([str(video), "-m", str(two), "-q", "--force"]) == 0
    _valid(default_output(video, "roll"))


def test_folder_treats_a_videos_axis_files_together(axis_packages, roll_clip: Path,
                                                    tmp_path: Path, capsys) -> None:
    _, two = axis_packages
    folder = tmp_path / "library"
    done, half, fresh = (_copy(roll_clip, folder / name) for name in ("a", "b", "c"))
    assert cli.main([str(done), "-m", str(two), "-q"]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in (default_output(done),
                                                 default_output(done, "roll"))}
    assert cli.main([str(half), "-m", str(two), "-q", "--axes", "stroke"]) == 0
    capsys.readouterr()
    assert cli.main([str(folder), "-m", str(two)]) == 0
    table = capsys.readouterr().out
    assert "its other axes exist" in table
    assert f"{default_output(half).name} exists but {default_output(half, 'roll').name}" in table
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert not default_output(half, "roll").exists()
    assert default_output(fresh).is_file() and default_output(fresh, "roll").is_file()
    assert cli.main([str(folder), "-m", str(two), "-q", "--force"]) == 0
    assert default_output(half, "roll").is_file()
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items())


def test_meta_axes_and_head_shape_are_checked(axis_packages, tmp_path: Path) -> None:
    one, two = axis_packages
    for axes in (["roll", "stroke"], ["stroke", "stroke"], ["stroke", "wiggle"], "stroke", []):
        broken = tmp_path / f"b{len(list(tmp_path.iterdir()))}.fsmodel"
        shutil.copytree(two, broken)
        meta = json.loads((broken / "meta.json").read_text())
        meta["axes"] = axes
        (broken / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="axes"):
            load_package(broken)
    lying = tmp_path / "lying.fsmodel"  # a one-axis head that claims a roll
    shutil.copytree(one, lying)
    meta = json.loads((lying / "meta.json").read_text())
    meta["axes"] = ["stroke", "roll"]
    (lying / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="axes stroke,roll"):
        load_package(lying, verify=False).verify()


def test_grade_grades_every_axis(axis_packages, roll_clip: Path, tmp_path: Path) -> None:
    from fsrun.groundtruth.grade import TruthClip, grade  # noqa: PLC0415

    _, two = axis_packages
    video = _copy(roll_clip, tmp_path)
    shutil.copy(truth_path(roll_clip), truth_path(video))
    shutil.copy(truth_path(roll_clip, "roll"), truth_path(video, "roll"))
    [graded] = grade(two, [TruthClip(video, truth_path(video), {"clip": "x"},
                                     {"roll": truth_path(video, "roll")})])
    rows = graded.rows()
    assert [r.get("axis", "stroke") for r in rows] == ["stroke", "roll"]
    assert np.isfinite(rows[1]["r"]) and rows[1]["clip"] == "x"
    assert set(graded.result.axis_positions) == {"stroke", "roll"}


def test_the_ray_plan_judges_a_videos_axis_files_together(axis_packages, roll_clip: Path,
                                                          tmp_path: Path) -> None:
    from fsrun.run.request import SessionSpec, VideoRequest  # noqa: PLC0415
    from fsrun.scale.ray_folder import _plan  # noqa: PLC0415
    from fsrun.scale.same_run import run_signature  # noqa: PLC0415

    _, two = axis_packages
    video = _copy(roll_clip, tmp_path / "library")
    assert cli.main([str(video), "-m", str(two), "-q"]) == 0
    template = VideoRequest(video=video.parent)
    signature = run_signature(SessionSpec(model=two), template, load_package(two).model_hash)
    axes = ("stroke", "roll")

    def plan() -> tuple[list, list]:
        return _plan(video.parent, [video], template, None, signature, axes)

    jobs, skipped = plan()
    assert not jobs and "same model and options" in skipped[0].detail
    default_output(video, "roll").unlink()
    jobs, skipped = plan()
    assert jobs[0].force and not skipped  # made again, every axis together
    default_output(video, "roll").write_text('{"actions": [{"at": 0, "pos": 1}]}')
    jobs, skipped = plan()
    assert not jobs and "not written by fsrun" in skipped[0].detail
    assert default_output(video, "roll").name in skipped[0].detail


def test_an_int8_encoder_for_a_two_axis_package(axis_packages, roll_clip: Path,
                                                tmp_path: Path) -> None:
    """fsexport quantize measures the drift of every axis; fsrun runs the int8 encoder with the
    two-axis head and writes both files."""
    from tests.conftest import _with_int8

    _, two = axis_packages
    package = _with_int8(two, tmp_path / "two8.fsmodel")
    meta = json.loads((package / "meta.json").read_text())
    drift = meta["quantization"]["int8"]["drift_vs_fp32"]
    assert 0 <= drift["position_mean_abs_diff"] <= drift["position_max_abs_diff"] <= 1
    video = _copy(roll_clip, tmp_path / "run")
    assert cli.main([str(video), "-m", str(package), "-q", "--no-cache",
                     "--precision", "int8"]) == 0
    for axis in ("stroke", "roll"):
        _valid(default_output(video, axis))
