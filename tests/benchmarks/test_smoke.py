"""Smoke test of the benchmark entry point on the tiny model and a 2-second clip.

No timing assertions: the numbers on a shared test machine mean nothing; the test checks that
every part runs and that results.json, report.md and the plots hold what a reader needs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from benchmarks.__main__ import main


def test_benchmark_entry_point_writes_results(tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["run", "--package", str(tiny_package), "--out", str(out),
            "--clips-dir", str(tmp_path / "clips"), "--seconds", "2", "--size", "96x64",
            "--batch-sizes", "1,4", "--repeats", "2", "--throughput-frames", "tiny=8",
            "--stage-repeats", "1", "--rss-seconds", "1", "--rss-factor", "4",
            "--spin-rounds", "1"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output

    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == 1
    system = data["system"]
    assert system["cpu_count"] >= 1 and "onnxruntime" in system["libraries"]
    assert "av" in system["libraries"] and len(system["load_average_start"]) == 3
    assert data["backends"][0] == "cpu"
    assert data["clips"]["tiny"]["frames"] == 60 and data["clips"]["tiny"]["width"] == 96

    encoder = data["encoder"]
    assert {(r["batch"], r["backend"], r["precision"]) for r in encoder} == {
        (1, "cpu", "fp32"), (4, "cpu", "fp32")}
    assert all(r["fps"]["median"] > 0 and r["fps"]["n"] == 2 for r in encoder)
    assert all(r["fps"]["p25"] <= r["fps"]["median"] <= r["fps"]["p75"] for r in encoder)

    stages = data["stages"][0]
    assert stages["decode"]["frames"] == 60 and stages["decode_rgb"]["frames"] == 60
    ms = stages["derived"]["ms_per_frame"]
    for key in ("decode", "rgb_convert_full", "cpu_resize", "encoder_full(in-graph resize)",
                "encoder_resized", "in_graph_resize"):
        assert ms[key] >= 0
    assert ms["encoder_resized"] > 0
    assert stages["derived"]["faster_path"] in ("in-graph resize", "CPU resize (swscale)")

    runs = {(e["kind"], e["decoder_used"], e["stride"]): e for e in data["e2e"]}
    assert set(runs) == {(kind, decoder, stride) for stride in (60, 30) for kind, decoder in
                         (("fsrun", "pyav/source"), ("baseline", "pyav"))} | {
                             ("fsrun", "pyav/graph", 30)}
    for entry in runs.values():
        assert entry["frames"] == 60 and entry["fps"] > 0 and entry["peak_rss_mib"] > 10
        assert entry["cpu_cores_busy"] > 0
    assert runs[("fsrun", "pyav/source", 30)]["speedup_vs_baseline"] > 0
    # One 60-frame window covers the whole clip: the baseline encodes each frame once.
    assert runs[("baseline", "pyav", 30)]["frames_encoded"] == 60
    fsrun_report = next(r["report"] for r in data["e2e_runs"] if r["kind"] == "fsrun")
    for key in ("decode", "encode", "head", "stitch", "write", "wall", "load"):
        assert fsrun_report[key] >= 0

    memory = data["memory"]
    assert memory["long"]["frames"] == 4 * memory["short"]["frames"] == 120
    assert memory["ratio_long_over_short"] > 0

    spin = data["spinning"][0]
    assert spin["variant"] == "tiny" and spin["spin_1"]["wall_minus_load"] > 0
    assert spin["spin_0"]["cpu_s"] > 0

    names = [t["name"] for t in data["targets"]]
    assert "fsrun fp32 vs baseline fp32, tiny cpu/pyav/source stride 30" in names
    assert "fsrun fp32 vs baseline fp32, tiny cpu/pyav/graph stride 30" in names
    assert any(n.startswith("overhead tiny cpu") for n in names)
    gpu = [t for t in data["targets"] if "GPU" in t["name"]]
    assert gpu and all(t["met"] is None for t in gpu)  # no GPU here: unmeasured, not "met"

    report = (out / "report.md").read_text()
    for heading in ("## Targets", "## Encoder throughput", "## End to end", "## Reproduce"):
        assert heading in report
    assert sorted(data["plots"]) == ["encoder_fps.png", "stages.png"]
    for name in data["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".scratch*"))

    notes = tmp_path / "notes.md"
    notes.write_text("fsrun is 1.23x faster here.\n")
    rerender = CliRunner().invoke(main, ["report", str(out), "--notes-file", str(notes)],
                                  catch_exceptions=False)
    assert rerender.exit_code == 0, rerender.output
    assert "## Closing note\n\nfsrun is 1.23x faster here." in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["notes"] == "fsrun is 1.23x faster here."


def test_stride_table_grades_the_demo_model_against_truth(tmp_path: Path) -> None:
    from benchmarks.stride_accuracy import STRIDES, POSTPROCESS

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


def test_demo_wide_grades_the_classic_family_by_track_rate_and_codec(tmp_path: Path) -> None:
    from fsrun.config import demo_model_dir
    from fsrun.funscript import read_funscript

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
    from fsrun.synth.cli import write_clips

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
    from fsrun.funscript import read_actions

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


def test_int8_package_is_measured_at_both_precisions(tiny_int8_package: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["run", "--package", str(tiny_int8_package), "--out", str(out),
            "--clips-dir", str(tmp_path / "clips"), "--seconds", "2", "--size", "96x64",
            "--batch-sizes", "4", "--repeats", "1", "--throughput-frames", "tiny=8",
            "--stage-repeats", "1", "--strides", "30", "--rss-seconds", "0",
            "--spin-variants", "", "--graph-resize-variants", ""]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert {r["precision"] for r in data["encoder"]} == {"fp32", "int8"}
    assert [s["precision"] for s in data["stages"]] == ["fp32", "int8"]
    fsrun = {e["precision"]: e for e in data["e2e"] if e["kind"] == "fsrun"}
    assert set(fsrun) == {"fp32", "int8"}, data.get("errors")
    assert all(e.get("speedup_vs_baseline", 0) > 0 for e in fsrun.values()), data.get("errors")
    assert [e["precision"] for e in data["e2e"] if e["kind"] == "baseline"] == ["fp32"]
    reports = {r["precision"]: r["report"]["precision"] for r in data["e2e_runs"]
               if r["kind"] == "fsrun"}
    assert reports == {"fp32": "fp32", "int8": "int8"}  # fsrun ran what the row says
    overhead = [t["name"] for t in data["targets"] if t["name"].startswith("overhead")]
    assert len(overhead) == 2 and any(" int8 " in n for n in overhead)
    assert "| int8 |" in (out / "report.md").read_text()


def test_int8_recipe_table(tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    args = ["int8", "--package", str(tiny_package), "--recipes", "minmax-all",
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
