"""results.json -> report.md: the answer first, then every table a reader needs to check it."""
from __future__ import annotations

import datetime as dt
from typing import Any

from benchmarks.targets import overhead_rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def answer_lines(results: dict[str, Any]) -> list[str]:
    """The author's question, answered from the isolated stage costs of this run."""
    lines = []
    for stages in results.get("stages", []):
        ms = stages["derived"]["ms_per_frame"]
        network = ms["encoder_resized"]
        prep_graph = (ms["decode"] + ms["rgb_convert_full"] + ms["in_graph_resize"]
                      + ms.get("h2d_full", 0))
        prep_cpu = ms["decode"] + ms["cpu_resize"] + ms.get("h2d_resized", 0)
        share = prep_graph / (prep_graph + network)
        lines.append(
            f"- **{stages['variant']} on {stages['backend']}** ({stages['precision']}): "
            "the network "
            f"costs {network:.2f} ms/frame; decode + RGB + resize cost {prep_graph:.2f} ms/frame "
            f"with the resize in the graph ({share:.0%} of the per-frame total) and "
            f"{prep_cpu:.2f} ms/frame with swscale resizing on the CPU "
            f"(decode alone {ms['decode']:.2f}, full-size RGB {ms['rgb_convert_full']:.2f}, "
            f"in-graph resize {ms['in_graph_resize']:.2f}, swscale resize {ms['cpu_resize']:.2f})."
            + (f" Host->device: {ms['h2d_full']:.3f} ms/frame full size vs "
               f"{ms['h2d_resized']:.3f} resized." if "h2d_full" in ms else "")
            + f" Faster path here: {stages['derived']['faster_path']}.")
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    rows = []
    for t in results.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "unmeasured"}[t["met"]]
        rows.append([t["name"], t["target"], _fmt(t["measured"], 3), verdict, t["detail"]])
    return _table(["target", "goal", "measured", "verdict", "detail"], rows)


def _encoder(results: dict[str, Any]) -> list[str]:
    rows = [[r["variant"], r["backend"], r["precision"], r["input"], r["input_size"], r["batch"],
             r["fps"]["median"], f"{r['fps']['p25']:.1f}-{r['fps']['p75']:.1f}", r["fps"]["n"],
             r["frames_per_repeat"]] for r in results.get("encoder", [])]
    return _table(["variant", "backend", "precision", "input", "size", "batch",
                   "frames/s (median)", "p25-p75", "repeats", "frames/repeat"], rows)


def _stages(results: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for s in results.get("stages", []):
        keys += [k for k in s["derived"]["ms_per_frame"] if k not in keys]
    rows = [[s["variant"], s["backend"], s.get("precision", "fp32")]
            + [s["derived"]["ms_per_frame"].get(k) for k in keys]
            for s in results.get("stages", [])]
    return _table(["variant", "backend", "precision"] + [f"{k} (ms/frame)" for k in keys], rows)


def _run_label(entry: dict[str, Any]) -> str:
    """fsrun or baseline; a baseline without model.onnx says it ran the split graphs."""
    graph = entry.get("baseline_graph", "model.onnx")
    return entry["kind"] if graph == "model.onnx" else f"{entry['kind']} ({graph})"


def _e2e(results: dict[str, Any]) -> list[str]:
    rows = [[e["variant"], e["backend"], _run_label(e), e.get("precision", "fp32"),
             e["decoder_used"], e["stride"], e["frames"], e["wall_median"],
             len(e["walls"]), e["fps"], e["realtime_factor"], e.get("speedup_vs_baseline"),
             e.get("structural_ceiling"), e["peak_rss_mib"], e.get("peak_device_mib"),
             e["cpu_cores_busy"]] for e in results.get("e2e", [])]
    return _table(["variant", "backend", "run", "precision", "decoder", "stride", "frames",
                   "wall s (median)",
                   "runs",
                   "frames/s", "x real time", "speed-up vs baseline", "ceiling",
                   "peak RSS MiB", "peak GPU MiB", "CPU cores busy"], rows)


def _fsrun_stages(results: dict[str, Any]) -> list[str]:
    rows = []
    for r in results.get("e2e_runs", []):
        if r["kind"] != "fsrun":
            continue
        rep = r["report"]
        decoder = f"{rep['decoder']}/{rep['resize']}" if "resize" in rep else rep["decoder"]
        rows.append([r["variant"], r["backend"], rep.get("precision", "fp32"), decoder,
                     r["stride"], r["round"], rep["load"], rep["decode"], rep["encode"],
                     rep["head"], rep["stitch"], rep["write"], rep["wall"]])
    return _table(["variant", "backend", "precision", "decoder", "stride", "round", "load s",
                   "decode s "
                   "(own thread)", "encode s", "head s", "stitch s", "write s", "wall s"], rows)


def _overhead(results: dict[str, Any]) -> list[str]:
    rows = [[o["variant"], o["backend"], o["precision"], o["decoder"], o["stride"],
             o["wall_minus_load"], o["load"], o["decode_only"], o["encoder_only"], o["necessary"],
             o["ratio"]] for o in overhead_rows(results)]
    return _table(["variant", "backend", "precision", "decoder", "stride", "wall - load s",
                   "load s",
                   "decode-only s",
                   "encoder-only s", "necessary s", "ratio"], rows)


def render_report(results: dict[str, Any]) -> str:
    sysinfo = results["system"]
    runs = results.get("runs") or []  # measured then, whenever the report is rendered
    when = (runs[0]["started"][:16] + " UTC" if runs and runs[0].get("started")
            else dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    out = [f"# fsrun benchmark: {sysinfo['machine']}", "",
           f"Run {when}, {results.get('duration_s', 0):.0f} s. Machine: {sysinfo['cpu_model']}, "
           f"{sysinfo['cpu_count']} CPUs, {sysinfo.get('memory_gib')} GiB, GPUs: "
           f"{', '.join(sysinfo['gpus']) or 'none'}"
           + (f" (driver {sysinfo['gpu_driver']})" if sysinfo.get("gpu_driver") else "")
           + ". Backends measured: "
           f"{', '.join(results['backends'])}.", "",
           ]
    notes = results.get("notes")
    if notes:  # the answer first: what was measured and what it means, then the evidence
        out += ["## The answer", "", notes, ""]
    out += ["## The evidence", "",
            "Every comparison below is a ratio of measurements taken in the same run (one "
            "invocation), alternating where runs are repeated. Machine load during each "
            "invocation (other processes share this machine):", ""]
    out += _table(["started (UTC)", "variants", "s", "load avg start", "load avg end",
                   "busy processes at start", "at end"],
                  [[r["started"], ", ".join(r["variants"]), r["duration_s"],
                    r["load_average_start"], r["load_average_end"],
                    ", ".join(r["busy_processes_start"]) or "none",
                    ", ".join(r["busy_processes_end"]) or "none"]
                   for r in results.get("runs", [])])
    out += ["## CPU or GPU bottleneck? (per-frame cost of each stage, measured alone)", ""]
    out += answer_lines(results) + [""]
    if not any(b in ("cuda", "tensorrt", "trt-native") for b in results["backends"]):
        out += ["No GPU on this machine: host->device copies, NVDEC, ORT CUDA/TensorRT and the "
                "PyTorch eager comparison are unmeasured here; the same command measures them "
                "on an NVIDIA machine.", ""]
    out += ["## Targets", ""] + _targets(results)
    out += ["## Encoder throughput (network only: random frames at the input size; warm-up "
            "excluded)", ""] + _encoder(results)
    out += ["## Stages measured alone (ms per sampled frame)", "",
            "decode = FFmpeg decode without colour conversion; rgb_convert_full = fsrun's PyAV "
            "source (full-size RGB) minus decode; cpu_resize = swscale to the input size minus "
            "decode; encoder_full = encoder fed full-size frames (resize in the graph); "
            "encoder_resized = encoder fed frames already at the input size.", ""]
    out += _stages(results)
    out += ["## End to end (each run in a fresh process; clip per variant below)", "",
            "Decoder column = decoder/resize as fsrun resolved them. `pyav/source` is fsrun's "
            "CPU default (`--resize auto`): swscale crops and scales each kept frame to the "
            "input size in the decoder; `pyav/graph` is `--resize graph` (full-size RGB, resize "
            "inside the encoder graph, the GPU default); `nvdec` decodes on the GPU. The "
            "baseline is the author's pipeline (benchmarks/baseline.py).", ""]
    out += _e2e(results)
    out += ["fsrun's own stage report per run (decode runs in a separate thread, overlapped "
            "with encode, so the stages add up to more than the wall time):", ""]
    out += _fsrun_stages(results)
    out += ["## Overhead: fsrun wall vs the necessary stages", "",
            "decode-only = fsrun's source over the clip; encoder-only = encoder on full-size "
            "frames "
            "(per-frame cost times the clip's frames); wall excludes the one-time model load "
            "(package verification and session creation), shown separately.", ""]
    out += _overhead(results)
    if results.get("spinning"):
        out += ["## ONNX Runtime spin-waiting in real CPU runs (stride 30, medians)", "",
                "ONNX Runtime's intra-op threads spin after each operator by default; the decode "
                "thread then competes with spinning threads for the same cores.", ""]
        out += _table(["variant", "frames", "spinning", "wall - load s", "decode s (thread)",
                       "encode s", "CPU s"],
                      [[r["variant"], r["frames"], setting == "1", *r[f"spin_{setting}"].values()]
                       for r in results["spinning"] for setting in ("1", "0")])
    memory = results.get("memory")
    if memory:
        out += ["## Memory: short vs 10x longer clip", ""]
        out += _table(["clip", "seconds", "frames", "peak RSS MiB",
                       "peak RSS after imports MiB", "wall s"],
                      [[k, memory[k]["seconds"], memory[k]["frames"], memory[k]["peak_rss_mib"],
                        memory[k].get("peak_rss_after_imports_mib"), memory[k]["wall"]]
                       for k in ("short", "long")])
    if results.get("torch_eager"):
        out += ["## PyTorch eager fp16 (same GPU)", ""]
        out += _table(["variant", "frames", "wall s", "frames/s", "peak GPU MiB"],
                      [[r.get("variant"), r.get("frames"), r.get("wall"), r.get("fps"),
                        r.get("peak_device_mib")] for r in results["torch_eager"]])
    out += ["## Plots", ""] + [f"![{p}]({p})" for p in results.get("plots", [])] + [""]
    commands = [r["command"] for r in results.get("runs", [])] or [sysinfo["command"]]
    out += ["## Reproduce", "", "Commands (from the repository root):", ""]
    out += [f"    {c}" for c in commands] + ["",
            f"Python {sysinfo['python']}, {sysinfo['platform']}, ONNX Runtime providers: "
            f"{', '.join(sysinfo['ort_providers'])}.", ""]
    out += _table(["library", "version"], sorted(sysinfo["libraries"].items()))
    out += _table(["variant", "clip", "size", "fps", "frames", "codec", "preset", "crf"],
                  [[v, c["path"], f"{c['width']}x{c['height']}", c["fps"], c["frames"],
                    c["codec"], c["preset"], c["crf"]] for v, c in results["clips"].items()])
    if results.get("errors"):
        out += ["## Failures", ""] + [f"- {e}" for e in results["errors"]] + [""]
    return "\n".join(out)
