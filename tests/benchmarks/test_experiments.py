"""The finished experiments (`python -m benchmarks.experiments`) still run: each on the tiny or
demo model and a few short clips, checking the tables and files a reader gets.

No timing assertions. Marked `long`: CI runs them as their own step (-m long), beside the
default suite's budget.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.experiments.__main__ import main

pytestmark = pytest.mark.long


def test_stride_table_grades_the_demo_model_against_truth(tmp_path: Path) -> None:
    from benchmarks.experiments.stride_accuracy import STRIDES, POSTPROCESS

    out = tmp_path / "stride"
    result = CliRunner().invoke(main, ["stride", "--out", str(out), "--seconds", "6"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "stride_accuracy.json").read_text())
    assert set(results["strides"]) == {str(s) for s in STRIDES}
    assert set(results["postprocess"]) == set(POSTPROCESS)
    # the demo model follows the truth at its default stride, frame by frame and as written
    default = results["strides"][str(results["default_stride"])]
    assert default["r_frames_min"] >= 0.9 and default["r_written_min"] >= 0.8
    raw = results["postprocess"]["raw (every frame)"]
    assert raw["actions"] == raw["frames"]  # raw keeps one point per sampled frame
    table = (out / "stride_accuracy.md").read_text()
    assert "(default)" in table and table.count("\n| ") >= len(STRIDES) + len(POSTPROCESS)


def test_demo_wide_grades_packages_on_many_clips_and_groups_the_misses(tmp_path: Path) -> None:
    from fsrun.config import demo_model_dir

    out, clips = tmp_path / "wide", tmp_path / "clips"
    args = ["demo-wide", "--package", f"demo={demo_model_dir()}", "--package",
            f"again={demo_model_dir()}", "--clips", "4", "--seconds", "4", "--clips-dir",
            str(clips), "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demo_wide.json").read_text())
    assert len(list(clips.glob("*.truth.funscript"))) == 4
    assert results["r"]["demo"] == results["r"]["again"]  # the same package grades the same
    assert len(results["r"]["demo"]) == len(results["scenes"]) == 4
    row = results["summary"]["demo"]
    assert row["share_ge_095"] == sum(r >= 0.95 for r in results["r"]["demo"]) / 4
    assert sum(n for n, _ in row["missed_by"]["background"].values()) == 4
    assert "| demo |" in (out / "demo_wide.md").read_text()
    assert (out / "demo_wide.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(main, ["demo-wide", "--package", str(tmp_path)])
    assert bad.exit_code == 2 and "LABEL=PACKAGE_FOLDER" in bad.output


def test_demo_wide_grades_the_roll_of_the_same_clips_drawn_tilting(tmp_path: Path) -> None:
    from fsrun.config import demo_model_dir
    from fsrun.groundtruth.grade import TruthClip, grade

    out, clips = tmp_path / "wide", tmp_path / "clips"
    args = ["demo-wide", "--package", f"demo={demo_model_dir()}", "--axis", "roll",
            "--clips", "2", "--seconds", "4", "--clips-dir", str(clips), "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demo_wide.json").read_text())
    assert results["axis"] == "roll" and results["bound"] == 0.9
    rolls = sorted((clips / "tilting").glob("*.roll.truth.funscript"))
    assert len(rolls) == 2 and not list(clips.glob("*.funscript"))  # apart from stroke clips
    videos = sorted(p for p in (clips / "tilting").iterdir() if ".funscript" not in p.name)
    graded = grade(demo_model_dir(), [TruthClip(v, v.with_name(v.stem + ".truth.funscript"),
                                                axis_truths={"roll": r})
                                      for v, r in zip(videos, rolls)])
    assert sorted(results["r"]["demo"]) == sorted(round(g.axes["roll"].pearson_r, 4)
                                                  for g in graded)
    assert "the roll of clips drawn tilting" in (out / "demo_wide.md").read_text()


def test_demo_wide_grades_the_classic_family_by_track_rate_and_codec(tmp_path: Path) -> None:
    from fsrun.config import demo_model_dir
    from fsrun.files.funscript import read_funscript

    out, clips = tmp_path / "wide", tmp_path / "clips"
    args = ["demo-wide", "--package", f"demo={demo_model_dir()}", "--family", "classic",
            "--clips", "3", "--seconds", "4", "--clips-dir", str(clips), "--out", str(out),
            "--name", "classic_wide"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "classic_wide.json").read_text())
    truths = sorted(clips.glob("*.truth.funscript"))
    assert len(truths) == 3
    assert {read_funscript(t)["metadata"]["synth"]["family"] for t in truths} == {"classic"}
    assert results["family"] == "classic" and "background" not in results["scenes"][0]
    missed_by = results["summary"]["demo"]["missed_by"]
    assert sorted(missed_by) == ["codec", "fps", "track"]
    assert sum(n for n, _ in missed_by["codec"].values()) == 3
    text = (out / "classic_wide.md").read_text()
    assert "held-out classic clips" in text and "by frame rate" in text


def test_demo_fit_grades_the_clips_a_package_trained_on_split_as_training_split(
        tmp_path: Path) -> None:
    from fsexport.train.dataset import find_pairs, split_by_video
    from fsrun.config import demo_model_dir
    from fsrun.groundtruth.synth.cli import write_clips

    data, out = tmp_path / "data", tmp_path / "fit"
    write_clips(data, 3, 4.0, ["30", "vfr"], ["h264"], 500, (96, 72), family="randomized")
    write_clips(data, 1, 4.0, ["30"], ["h264"], 600, (96, 72), family="classic")
    args = ["demo-fit", "--package", str(demo_model_dir()), "--data", str(data),
            "--val-fraction", "0.5", "--seed", "3", "--train-every", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demo_fit.json").read_text())
    train, val = split_by_video(find_pairs(data), 0.5, 3)
    expected = {"trained on": {p.video.name for p in train},
                "validation": {p.video.name for p in val}}
    assert results["training_clips"] == 2 and results["validation_clips"] == 2
    assert len(results["rows"]) == 3  # the classic clip is not of the family graded
    for row in results["rows"]:
        assert row["video"] in expected[row["split"]] and row["background"]
        assert -1.0 <= row["r"] <= 1.0
    graded = sum(row["clips"] for row in results["summary"].values())
    assert graded == 3
    assert "trained on" in (out / "demo_fit.md").read_text()
    assert (out / "demo_fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_classic = tmp_path / "classic_only"
    write_clips(only_classic, 2, 3.0, ["30"], ["h264"], 700, (96, 72), family="classic")
    bad = CliRunner().invoke(main, ["demo-fit", "--package", str(demo_model_dir()), "--data",
                                    str(only_classic), "--out", str(out)])
    assert bad.exit_code == 2 and "no randomized clip" in bad.output


def test_demo_rates_renders_the_same_scene_at_another_rate(tmp_path: Path) -> None:
    from fsrun.config import demo_model_dir
    from fsrun.files.funscript import read_actions

    out, clips = tmp_path / "rates", tmp_path / "clips"
    # demo-wide's clip 20 is its first VFR clip
    args = ["demo-rates", "--package", str(demo_model_dir()), "--clips", "21", "--seconds", "4",
            "--rates", "30", "--clips-dir", str(clips), "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "demo_rates.json").read_text())
    assert results["seeds"] == [940_020] and set(results["r"]) == {"vfr", "30"}
    vfr_truth = next(clips.glob("*_vfr_*.truth.funscript"))
    constant_truth = next(clips.glob("*_30_*.truth.funscript"))
    t_vfr, pos_vfr = read_actions(vfr_truth)
    t_30, pos_30 = read_actions(constant_truth)
    assert len(t_vfr) != len(t_30)  # other frame times ...
    inside = t_vfr <= t_30[-1]
    # ... and the same track: positions agree wherever both clips have a frame
    assert np.abs(np.interp(t_vfr[inside], t_30, pos_30) - pos_vfr[inside]).max() <= 4
    row = results["summary"]["30"]
    assert row["mean_abs_diff_from_vfr"] == abs(results["r"]["30"][0] - results["r"]["vfr"][0])
    assert "| VFR |" in (out / "demo_rates.md").read_text()
    bad = CliRunner().invoke(main, ["demo-rates", "--package", str(demo_model_dir()),
                                    "--rates", "fast"])
    assert bad.exit_code == 2 and "invalid frame rate" in bad.output


def test_clip_looks_keeps_each_frames_time(tmp_path: Path) -> None:
    """A VFR clip in six looks: as it is, the package's r matches the original clip's (the
    frames keep their timestamps); every look is graded; a bad --package is one line."""
    from benchmarks.experiments.clip_looks import LOOKS
    from fsrun.config import demo_model_dir
    from fsrun.groundtruth.grade import TruthClip, grade
    from fsrun.groundtruth.seeds import seed
    from fsrun.groundtruth.synth.cli import write_clips

    clip = write_clips(tmp_path / "clip", 1, 4.0, ["vfr"], ["h264"], seed("tests-held-out-classic",
                                                                          40), (96, 72))[0]
    out = tmp_path / "looks"
    args = ["clip-looks", "--video", str(clip.video), "--truth", str(clip.truth), "--package",
            f"demo={demo_model_dir()}", "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "clip_looks.json").read_text())["rows"]
    assert [row["look"] for row in rows] == list(LOOKS)
    original = grade(demo_model_dir(), [TruthClip(clip.video, clip.truth, {})])[0].raw.pearson_r
    assert original > 0.8 and abs(rows[0]["r"] - original) < 0.03, (rows, original)
    assert "| demo |" in (out / "clip_looks.md").read_text()
    bad = CliRunner().invoke(main, ["clip-looks", "--video", str(clip.video), "--truth",
                                    str(clip.truth), "--package", str(tmp_path)])
    assert bad.exit_code == 2 and "expected LABEL=PACKAGE_FOLDER" in bad.output
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.video.read_bytes()[:3000])
    for video, truth in ((cut, clip.truth), (clip.video, cut)):
        bad = CliRunner().invoke(main, ["clip-looks", "--video", str(video), "--truth", str(truth),
                                        "--package", f"demo={demo_model_dir()}", "--out",
                                        str(tmp_path / "bad")])
        assert bad.exit_code == 2, bad.output  # a one-line error, no traceback
        assert bad.output.strip().splitlines()[-1].startswith("Error: "), bad.output
    assert not (tmp_path / "bad").exists()


def test_roll_augmentation_trains_every_setting_from_the_package(built_tiny_package: Path,
                                                                 tmp_path: Path) -> None:
    from benchmarks.experiments.roll_augmentation import _settings

    out = tmp_path / "roll"
    result = CliRunner().invoke(main, ["roll-augmentation", "--package", str(built_tiny_package),
                                       "--clips", "5", "--steps", "3", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "roll-augmentation" / "roll_augmentation.json").read_text())
    assert [row["setting"] for row in results["rows"]] == list(_settings())
    assert all(-1 <= row["roll_r"] <= 1 and -1 <= row["stroke_r"] <= 1
               for row in results["rows"])
    table = (out / "roll-augmentation" / "roll_augmentation.md").read_text()
    assert "| without colour |" in table and "Without augmentation the encoder reaches" in table


def test_train_cache_table_times_both_ways(tmp_path: Path) -> None:
    out = tmp_path / "cache"
    result = CliRunner().invoke(main, ["train-cache", "--variants", "tiny", "--epochs", "2",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = json.loads((out / "train_cache.json").read_text())["rows"][0]
    assert row["variant"] == "tiny" and row["with_cache"]["cache"] is True
    with_cache, without = row["with_cache"], row["without_cache"]
    assert len(with_cache["epoch_seconds"]) == len(without["epoch_seconds"]) == 2
    assert row["epoch_ratio"] == without["median_epoch_s"] / with_cache["median_epoch_s"]
    assert "| tiny |" in (out / "train_cache.md").read_text()


def test_int8_recipe_table(built_tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    args = ["int8", "--package", str(built_tiny_package), "--recipes", "minmax-all",
            "--ground-truth", "--clips", "1", "--clip-seconds", "3", "--calibration-frames", "8",
            "--cosine-frames", "8", "--speed-frames", "4", "--speed-rounds", "1",
            "--out", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (row,) = json.loads((out / "int8_configs.json").read_text())["rows"]
    assert row["recipe"] == "minmax-all" and row["fp32_ms"] > 0 and row["int8_ms"] > 0
    assert 0.5 < row["cosine_mean"] <= 1.0 and row["cosine_frames"] == 8
    clips = row["per_clip"]
    assert len(clips["fp32"]) == len(clips["int8"]) == 1
    assert row["r_drop_mean"] == clips["fp32"][0]["r"] - clips["int8"][0]["r"]
    assert "| minmax-all |" in (out / "int8_configs.md").read_text()


def test_import_memory_measures_both_doors(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import-memory", "--work", str(tmp_path / "work"),
                                       "--sizes", "32", "--backbone", "test_efficientnet",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "import_memory_after.json").read_text())["runs"]
    assert [(r["door"], r["size"], r["exit_code"]) for r in runs] == \
        [("fsrun --model", 32, 0), ("fsexport import", 32, 0)]
    assert all(r["peak_mb"] > 50 and r["wall_s"] > 0 for r in runs)
    table = (out / "import_memory.md").read_text()
    assert "| fsrun --model | 32 |" in table and "after peak MB" in table
