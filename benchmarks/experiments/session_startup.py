"""Folder mode's start-up cost per video: before model sessions, and with one for the folder.

`python -m benchmarks session-startup --package PKG --before-src DIR` writes N short synthetic
clips into a folder and runs `fsrun FOLDER --no-cache --force --report R` on it, alternating
between two source trees of fsrun: DIR (an fsrun from before model sessions, where every video
resolved, hash-checked and loaded the package and started its backends again), and this one
(one session for the folder). Each run is a fresh interpreter, as a user would start it.

Per video the run report's "load" stage is the start-up: the package, the backends and the
per-video checks (output paths, probe). Before, every video pays all of it; with a session the
first video pays the package and the backends, the others only their own checks. A tree from
before sessions comes from git: `git archive <commit> runtime/src | tar -x -C DIR`.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.files import write_json_and_markdown
from benchmarks.sysinfo import load_average, uptime

HERE = Path(__file__).resolve().parent
THIS_SRC = HERE.parents[1] / "runtime" / "src"


@dataclass
class StartupConfig:
    package: Path  # model package every run uses
    before_src: Path  # runtime/src of an fsrun from before model sessions
    clips: int = 20  # videos in the folder
    seconds: float = 2.0  # length of each clip
    size: tuple[int, int] = (160, 120)  # clip WxH
    repeats: int = 2  # runs of each tree, alternating


def _folder_run(src: Path, folder: Path, package: Path, report: Path) -> dict[str, Any]:
    """One `fsrun FOLDER` in a fresh interpreter with fsrun imported from src."""
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [sys.executable, "-m", "fsrun.cli", str(folder), "--model", str(package),
               "--backend", "cpu", "--no-cache", "--force", "--quiet", "--report", str(report)]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"fsrun failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    files = json.loads(report.read_text())["files"]
    loads = [f["report"]["load"] for f in files]
    seconds = [f["seconds"] for f in files]
    return {"wall_s": round(wall, 3), "videos": len(files), "load_s": loads,
            "first_load_s": loads[0], "other_load_median_s": statistics.median(loads[1:]),
            "load_total_s": round(sum(loads), 3),
            "video_median_s": statistics.median(seconds[1:]),
            "session_startup_s": files[0]["report"].get("session_startup")}


def measure(cfg: StartupConfig, log: Any = print) -> dict[str, Any]:
    from fsrun.groundtruth.synth.clips import ClipSpec, write_clip  # noqa: PLC0415

    trees = {"before": Path(cfg.before_src), "session": THIS_SRC}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="fsrun-startup-bench-") as scratch:
        folder = Path(scratch) / "clips"
        for i in range(cfg.clips):
            write_clip(ClipSpec(seconds=cfg.seconds, width=cfg.size[0], height=cfg.size[1],
                                seed=i), folder, name=f"clip{i:02d}")
        for repeat in range(cfg.repeats):
            for name, src in trees.items():
                run = _folder_run(src, folder, cfg.package, Path(scratch) / f"{name}.json")
                runs[name].append(run)
                log(f"session-startup {name:8s} run {repeat + 1}: wall {run['wall_s']:.1f} s, "
                    f"load first {run['first_load_s']:.3f} s, others (median) "
                    f"{run['other_load_median_s']:.3f} s, total {run['load_total_s']:.2f} s")
    summary = {name: {key: statistics.median(r[key] for r in rows)
                      for key in ("wall_s", "first_load_s", "other_load_median_s",
                                  "load_total_s", "video_median_s")}
               for name, rows in runs.items()}
    before, after = summary["before"], summary["session"]
    return {"package": str(cfg.package), "clips": cfg.clips, "seconds": cfg.seconds,
            "size": list(cfg.size), "repeats": cfg.repeats, "runs": runs, "summary": summary,
            "load_total_ratio": before["load_total_s"] / max(after["load_total_s"], 1e-9),
            "wall_ratio": before["wall_s"] / max(after["wall_s"], 1e-9),
            "load_average_start": load_start, "load_average_end": load_average(),
            "uptime": uptime()}


def to_markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    lines = [
        "# Folder mode: start-up cost per video, before and with one model session",
        "",
        f"Package `{Path(results['package']).name}`, {results['clips']} clips of "
        f"{results['seconds']:g} s at {results['size'][0]}x{results['size'][1]}, "
        f"`fsrun FOLDER --backend cpu --no-cache`, {results['repeats']} runs of each tree "
        "alternating, medians. The load stage is each video's start-up: package, backends "
        "and its own checks.",
        "",
        "| fsrun | wall (s) | load, first video (s) | load, each other video (s) "
        "| load, all videos (s) | per video (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("before", "before sessions"), ("session", "one session")):
        row = s[name]
        lines.append(f"| {label} | {row['wall_s']:.1f} | {row['first_load_s']:.3f} | "
                     f"{row['other_load_median_s']:.3f} | {row['load_total_s']:.2f} | "
                     f"{row['video_median_s']:.3f} |")
    lines += ["", f"Start-up over all videos: {results['load_total_ratio']:.1f}x less with one "
              f"session; folder wall time {results['wall_ratio']:.2f}x.", "",
              f"Machine load: `{results['uptime']}` (start: {results['load_average_start']}, "
              f"end: {results['load_average_end']}); a shared 2-core machine, so compare "
              "within this table only.", ""]
    return "\n".join(lines)


def write(out: Path, results: dict[str, Any], name: str = "session_startup") -> tuple[Path, Path]:
    return write_json_and_markdown(out, name, results, to_markdown(results))
