"""Two figures a person reads at a glance: time per stage per configuration (stacked, per
frame), and encoder frames/s per variant and backend."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fsrun.files.atomic import atomic_file

# Stage -> colour, shared by every bar so a stage looks the same everywhere.
STAGE_COLOURS: dict[str, str] = {
    "decode": "#4c72b0", "rgb/resize on CPU": "#dd8452", "host->device": "#937860",
    "encoder (incl. in-graph resize)": "#2d6a3e", "encoder": "#55a868", "head": "#c44e52",
    "stitch + write": "#8172b3", "composite model": "#64b5cd",
    "decode not hidden + other": "#a6bddb",
}


def stage_bars(results: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """variant -> [(configuration label, {stage: ms per frame})]."""
    bars: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for stages in results.get("stages", []):
        ms = stages["derived"]["ms_per_frame"]
        key = stages["variant"]
        label = f"{stages['backend']} {stages.get('precision', 'fp32')}"
        bars.setdefault(key, []).append((f"{label}\nin-graph resize", {
            "decode": ms["decode"], "rgb/resize on CPU": ms["rgb_convert_full"],
            "host->device": ms.get("h2d_full", 0.0),
            "encoder (incl. in-graph resize)": ms["encoder_full(in-graph resize)"]}))
        bars[key].append((f"{label}\nCPU resize", {
            "decode": ms["decode"], "rgb/resize on CPU": ms["cpu_resize"],
            "host->device": ms.get("h2d_resized", 0.0), "encoder": ms["encoder_resized"]}))
    for entry in results.get("e2e", []):
        runs = [r for r in results.get("e2e_runs", []) if r["variant"] == entry["variant"]
                and r["backend"] == entry["backend"] and r["stride"] == entry["stride"]
                and r["kind"] == entry["kind"] and r["decoder"] == entry["decoder"]
                and r.get("precision", "fp32") == entry.get("precision", "fp32")]
        if not runs:
            continue
        report, frames = runs[0]["report"], max(1, entry["frames"])
        per = {k: 1000.0 * v / frames for k, v in report.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        label = (f"{entry['backend']}/{entry['decoder_used']}\n{entry['kind']} "
                 f"{entry.get('precision', 'fp32')} s{entry['stride']}")
        if entry["kind"] == "fsrun":
            encoder = "encoder" if entry["decoder_used"].endswith("/source") else \
                "encoder (incl. in-graph resize)"
            stack = {encoder: per["encode"], "head": per["head"],
                     "stitch + write": per["stitch"] + per["write"]}
            # Decode runs in its own thread, overlapped: only the part not hidden adds wall time.
            hidden = 1000.0 * (entry["wall_median"] - report["load"]) / frames - sum(stack.values())
            stack = {"decode not hidden + other": max(0.0, hidden), **stack}
        else:
            stack = {"decode": per["decode_resize"], "rgb/resize on CPU": 0.0,
                     "composite model": per["model"]}
        bars.setdefault(entry["variant"], []).append((label, stack))
    return bars


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    bars = stage_bars(results)
    if bars:
        fig, axes = plt.subplots(1, len(bars), figsize=(4.8 * len(bars) + 1, 5.2), squeeze=False)
        handles: dict[str, Any] = {}
        for ax, (variant, configs) in zip(axes[0], bars.items()):
            for i, (label, stack) in enumerate(configs):
                bottom = 0.0
                for stage, value in stack.items():
                    handles[stage] = ax.bar(i, value, bottom=bottom,
                                            color=STAGE_COLOURS.get(stage, "#999999"))
                    bottom += value
                ax.text(i, bottom, f"{bottom:.1f}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(configs)), [c[0] for c in configs], fontsize=7, rotation=35,
                          ha="right")
            ax.set_title(f"{variant}", fontsize=10)
            ax.set_ylabel("wall ms per frame")
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=5, fontsize=7,
                   frameon=False)
        fig.suptitle("time per frame by stage: stages alone (resize in the graph vs on the CPU), "
                     "then real runs (fsrun, baseline; model load excluded)", fontsize=9)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        written.append(save_figure(fig, out / "stages.png"))
        plt.close(fig)
    best = _best_encoder_rates(results)
    if best:
        variants = sorted({v for v, _ in best}, key=_variant_order)
        backends = sorted({b for _, b in best})
        fig, ax = plt.subplots(figsize=(7, 4.5))
        width = 0.8 / max(1, len(backends))
        for j, backend in enumerate(backends):
            xs = [i + j * width for i, v in enumerate(variants) if (v, backend) in best]
            ys = [best[(v, backend)] for v in variants if (v, backend) in best]
            ax.bar(xs, ys, width=width, label=backend)
            for x, y in zip(xs, ys):
                ax.text(x, y, f"{y:.0f}" if y >= 10 else f"{y:.1f}", ha="center", va="bottom",
                        fontsize=8)
        ax.set_xticks([i + width * (len(backends) - 1) / 2 for i in range(len(variants))], variants)
        ax.set_yscale("log")
        ax.set_ylabel("frames/s (log scale)")
        ax.set_title("frames/s per variant and backend (encoder: best batch size)")
        ax.legend()
        fig.tight_layout()
        written.append(save_figure(fig, out / "encoder_fps.png"))
        plt.close(fig)
    return written


def _variant_order(name: str) -> int:
    order = ["tiny", "effv2s", "effv2m", "effv2l"]
    return order.index(name) if name in order else len(order)


def _best_encoder_rates(results: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(variant, series) -> frames/s: the encoder's best batch per backend and precision, and
    fsrun end to end (stride 30) per backend and decoder."""
    best: dict[tuple[str, str], float] = {}
    for row in results.get("encoder", []):
        key = (row["variant"], f"encoder {row['backend']} {row['precision']}")
        best[key] = max(best.get(key, 0.0), row["fps"]["median"])
    for entry in results.get("e2e", []):
        if entry["kind"] == "fsrun" and entry["stride"] == 30:
            key = (entry["variant"], f"fsrun end to end {entry['backend']}/"
                                     f"{entry['decoder_used']} {entry.get('precision', 'fp32')}")
            best[key] = max(best.get(key, 0.0), entry["fps"])
    return best


def save_figure(fig: Any, path: Path) -> str:
    with atomic_file(path) as f:
        fig.savefig(f, dpi=110, format="png")
    return path.name
