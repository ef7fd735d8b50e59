"""Smoke test of the benchmark entry point on the tiny model and a 2-second clip.

No timing assertions: the numbers on a shared test machine mean nothing; the test checks that
every part runs and that results.json, report.md and the plots hold what a reader needs.
"""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from benchmarks.__main__ import main


def test_benchmark_entry_point_writes_results(built_tiny_package: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["run", "--package", str(built_tiny_package), "--out", str(out),
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
    report = (out / "report.md").read_text()
    assert "## The answer\n\nfsrun is 1.23x faster here." in report  # the answer first
    assert report.index("## The answer") < report.index("## The evidence") < report.index(
        "## Targets")
    assert json.loads((out / "results.json").read_text())["notes"] == "fsrun is 1.23x faster here."


def test_int8_package_is_measured_at_both_precisions(built_tiny_int8_package: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["run", "--package", str(built_tiny_int8_package), "--out", str(out),
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

