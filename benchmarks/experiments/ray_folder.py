"""`fsrun DIR --ray` against folder mode on one machine: wall time, ratio, Ray's fixed cost.

    python -m benchmarks.experiments.ray_folder --out benchmarks/results/MACHINE/experiments

One run each, in this order: folder mode (one process, one model session), then `--ray` with a
local Ray started by the run itself (ray.init, actors, their sessions, ray.shutdown all inside
the timed wall), both with the embedding cache off and the bundled demo model unless --model.
The scripts of the two runs must be byte-identical. Writes ray_folder.json and ray_folder.md.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from benchmarks.sysinfo import collect, uptime
from benchmarks.videos import ClipParams, make_clip
from fsrun.config import demo_model_dir
from fsrun.folder import process_folder
from fsrun.run.request import RunHooks, SessionSpec, VideoRequest
from fsrun.scale.cluster import DEFAULT_ACTOR_CPUS
from fsrun.scale.ray_folder import process_ray_folder

TARGET_RATIO = 1.25  # --ray wall / folder-mode wall, Ray's start-up included
MIN_SINGLE_S = 60.0  # the folder-mode run must take at least this long to count


def _scripts(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.funscript"))}


def measure(library: Path, model: Path, work: Path, actor_cpus: int) -> dict:
    spec = SessionSpec(model=model, use_cache=False)
    request, hooks = VideoRequest(video=library), RunHooks(quiet=True)
    uptimes = {"before": uptime()}
    began = time.perf_counter()
    single = process_folder(library, spec, request, hooks, output_dir=work / "single")
    single_s = time.perf_counter() - began
    uptimes["between"] = uptime()
    began = time.perf_counter()
    ray_run = process_ray_folder(library, spec, request, hooks, ["mp4"],
                                 output_dir=work / "ray", actor_cpus=actor_cpus)
    ray_s = time.perf_counter() - began
    uptimes["after"] = uptime()
    frames = sum((o.report or {}).get("frames", 0) for o in single.outcomes)
    same = _scripts(work / "single") == _scripts(work / "ray")
    return {
        "videos": len(single.outcomes), "frames": frames,
        "ok": {"single": single.count("ok"), "ray": ray_run.summary.count("ok")},
        "single_s": round(single_s, 2), "ray_s": round(ray_s, 2),
        "ratio": round(ray_s / single_s, 3),
        "ray_startup_s": round(ray_run.startup_s, 2),
        "ratio_without_startup": round((ray_s - ray_run.startup_s) / single_s, 3),
        "ray_actors": ray_run.actors, "ray_actor_options": ray_run.actor_options,
        "scripts_identical": same, "uptime": uptimes,
        "target": {"ratio_max": TARGET_RATIO, "single_min_s": MIN_SINGLE_S,
                   "met": same and single_s >= MIN_SINGLE_S and ray_s / single_s <= TARGET_RATIO},
    }


def markdown(result: dict, clip: dict, system: dict, unique: int) -> str:
    r = result
    verdict = "met" if r["target"]["met"] else "NOT met"
    return "\n".join([
        "# `fsrun DIR --ray` against folder mode (one run each)",
        "",
        f"{r['videos']} videos (copies of {unique} clips, {clip['width']}x{clip['height']}, {clip['seconds']:g} s at "
        f"{clip['fps']} fps, {clip['codec']}), {r['frames']} frames, bundled demo model, "
        "embedding cache off; `--ray` starts its own local Ray inside the timed run.",
        "",
        "| run | wall (s) | ratio to folder mode |",
        "|---|---|---|",
        f"| folder mode (one process, one model session) | {r['single_s']} | 1.000 |",
        f"| `--ray`, local, {r['ray_actors']} actor(s) {r['ray_actor_options']} | {r['ray_s']} "
        f"| {r['ratio']} |",
        f"| `--ray` minus Ray's fixed start-up ({r['ray_startup_s']} s) | "
        f"{round(r['ray_s'] - r['ray_startup_s'], 2)} | {r['ratio_without_startup']} |",
        "",
        f"Target (`--ray` within {TARGET_RATIO}x of a folder run of at least {MIN_SINGLE_S:g} s,"
        f" scripts byte-identical): **{verdict}**. Scripts identical: {r['scripts_identical']}.",
        "",
        "Ray's fixed start-up cost is ray.init (a local head: GCS, raylet, workers) plus each "
        "actor's model session (package verified, backends started); it is paid once per run, "
        "whatever the number of videos. The rest of the difference includes ray.shutdown and "
        "Ray's own processes (GCS, raylet) running beside the actor on the same two cores; it "
        "was not profiled further.",
        "",
        "The machine was shared with other jobs while this ran (2 cores); `uptime`:",
        "",
        *[f"- {when}: `{text}`" for when, text in r["uptime"].items()],
        "",
        f"CPU: {system.get('cpu_model', '?')} ({system.get('cpu_count', '?')} cores); "
        f"Python {system.get('python', '?')}; command: `{system.get('command', '')}`.",
        "",
    ])


@click.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Results folder (benchmarks/results/MACHINE).")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model package (default: the bundled demo).")
@click.option("--clips", type=int, default=16, show_default=True, help="Videos in the folder.")
@click.option("--unique", type=int, default=3, show_default=True,
              help="Distinct clips rendered; the folder holds copies under other names.")
@click.option("--seconds", type=float, default=40.0, show_default=True, help="Per clip.")
@click.option("--width", type=int, default=640, show_default=True)
@click.option("--height", type=int, default=360, show_default=True)
@click.option("--clips-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where clips are made and reused (default: a temporary folder).")
@click.option("--actor-cpus", type=int, default=DEFAULT_ACTOR_CPUS, show_default=True)
def main(out: Path, model: Path | None, clips: int, unique: int, seconds: float, width: int, height: int,
         clips_dir: Path | None, actor_cpus: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fsrun-ray-bench-") as tmp:
        work = Path(tmp)
        library = work / "library"
        source = clips_dir or work / "clips"
        params = [ClipParams(width=width, height=height, seconds=seconds, seed=i)
                  for i in range(max(1, unique))]
        made = [make_clip(p, source) for p in params]
        for i in range(clips):
            # A small tree (mirrored under the output folders); copies, not links, so the runs
            # read every file (the embedding cache is off: no copy is recognised).
            target = library / f"part{i // 4}" / f"video{i:03d}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made[i % len(made)], target)
        result = measure(library, model or demo_model_dir(), work, actor_cpus)
    system = collect()
    system["command"] = " ".join(["python", "-m", "benchmarks.experiments.ray_folder", *sys.argv[1:]])
    out.mkdir(parents=True, exist_ok=True)
    document = {"clip": params[0].describe(), "unique_clips": len(params), "system": system,
                **result}
    (out / "ray_folder.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / "ray_folder.md").write_text(markdown(result, params[0].describe(), system,
                                                len(params)), encoding="utf-8")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "uptime"}, indent=2))


if __name__ == "__main__":
    main()
