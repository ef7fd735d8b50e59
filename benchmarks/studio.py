"""The studio's targets, measured: `python -m benchmarks studio`.

1. Post-processing redone on a cached 60-minute video: server time per change (target: under
   200 ms), and a stride change, which runs only the head (with its progress events).
2. The library of a folder of 1,000 videos: the first listing (no index yet), the time until
   every duration is indexed, and later listings (target: under 1 s).
3. A video scripted from the studio against `fsrun VIDEO` on the same machine (target: within
   5%): alternating runs, no embedding cache on either side, the studio's job time (from its
   start to its end, as the queue records them) against the run's own wall time in the
   command's report less the model session's start-up (the studio opens its session once, for
   every job), and the command's process time for what a user waits in a terminal.

Requests go through Starlette's test client in this process: the server's own time is what the
API reports ("seconds"); the round trip adds JSON encoding, as a browser would see it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.seeds import seed
from fsrun.groundtruth.synth.cli import write_clips
from fsrun.run.request import SessionSpec

from benchmarks.files import write_json_and_markdown

# What a person changes in the viewer, one at a time (stride aside).
CHANGES = ({"min_amplitude": 5}, {"min_amplitude": 20}, {"rdp_epsilon": 0}, {"rdp_epsilon": 8},
           {"stretch_percentile": 5}, {"invert": True}, {"offset_ms": -150}, {"raw": True})


@dataclass(frozen=True)
class StudioBenchConfig:
    package: Path  # model package the studio and the command run
    work: Path  # clips and caches (reused between runs of the benchmark)
    long_minutes: float = 60.0  # the cached video post-processing is redone on
    library_size: int = 1000  # videos in the library folder
    run_seconds: float = 120.0  # the clip scripted by the studio and by the command
    repeats: int = 5  # runs of each side, alternating
    size: tuple[int, int] = (128, 96)  # clip WxH

    def __post_init__(self) -> None:
        if self.long_minutes <= 0 or self.library_size < 1 or self.repeats < 1:
            raise ValueError("long_minutes, library_size and repeats must be positive")


def _clip(folder: Path, seconds: float, index: int, size: tuple[int, int]) -> Path:
    """A synthetic clip in folder, rendered once and reused."""
    found = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    if found:
        return found[0]
    write_clips(folder, 1, seconds, ["30"], ["h264"], seed("studio", index), size)
    return sorted(folder.glob("*.mp4"))[0]


def _studio(folder: Path, spec: SessionSpec) -> tuple[Any, Any]:
    from fsrun.studio.app import Studio, build_app  # noqa: PLC0415
    from starlette.testclient import TestClient  # noqa: PLC0415

    studio = Studio(folder, spec, port=8765)
    client = TestClient(build_app(studio), base_url="http://127.0.0.1:8765",
                        headers={"x-studio-token": studio.token})
    return studio, client


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = call()
    return value, time.perf_counter() - began


def measure_post_processing(cfg: StudioBenchConfig, log: Callable[[str], None]) -> dict:
    folder = cfg.work / "long"
    video = _clip(folder, cfg.long_minutes * 60.0, 100, cfg.size)
    studio, client = _studio(folder, SessionSpec(model=cfg.package,
                                                 cache_dir=cfg.work / "cache"))
    heard = studio.events.listen()
    try:
        log(f"first look at {video.name} ({cfg.long_minutes:g} min; encodes it unless cached)")
        first, first_s = _timed(lambda: client.get(f"/api/look?video={video.name}").json())
        encoded = False
        while not heard.empty():
            encoded |= heard.get().get("stage") == "encode"
        frames = len(first["raw"]["at"])
        options = dict(first["options"])
        redo = []
        for _ in range(cfg.repeats):
            for change in CHANGES:
                body = {"video": video.name, "stride": first["stride"],
                        "options": {**options, **change}}
                answer, trip = _timed(lambda b=body: client.post("/api/redo", json=b).json())
                redo.append({"change": change, "server_ms": answer["seconds"] * 1000,
                             "round_trip_ms": trip * 1000, "actions": len(answer["actions"])})
        while not heard.empty():
            heard.get()  # nothing is expected here: redoing never runs the model
        stride = 30 if first["stride"] != 30 else 20
        log(f"stride {first['stride']} -> {stride}: the head again, from the cache")
        changed, stride_trip = _timed(lambda: client.get(
            f"/api/look?video={video.name}&stride={stride}&options={json.dumps(options)}").json())
        events = []
        while not heard.empty():
            events.append(heard.get())
        head_events = [e for e in events if e.get("type") == "viewer" and e["stage"] == "head"]
    finally:
        studio.close()
    server = [r["server_ms"] for r in redo]
    return {
        "video": video.name, "minutes": cfg.long_minutes, "frames": frames,
        "first_look_s": round(first_s, 2), "first_look_encoded": encoded,
        "redo_server_ms_median": round(statistics.median(server), 2),
        "redo_server_ms_max": round(max(server), 2),
        "redo_round_trip_ms_median": round(statistics.median(r["round_trip_ms"] for r in redo), 2),
        "redo": redo, "stride_from": first["stride"], "stride_to": stride,
        "stride_server_s": changed["seconds"], "stride_round_trip_s": round(stride_trip, 3),
        "stride_progress_events": len(head_events),
        "encode_events_on_stride_change": sum(e.get("stage") == "encode" for e in events),
    }


def measure_library(cfg: StudioBenchConfig, log: Callable[[str], None]) -> dict:
    source = _clip(cfg.work / "library-source", 1.0, 200, cfg.size)
    folder = cfg.work / f"library-{cfg.library_size}"
    if folder.exists():
        import shutil  # noqa: PLC0415

        shutil.rmtree(folder)  # no index from an earlier run: the first listing is cold
    folder.mkdir(parents=True)
    for i in range(cfg.library_size):
        target = folder / f"shelf{i // 100:02d}" / f"video{i:04d}.mp4"
        target.parent.mkdir(exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            target.write_bytes(source.read_bytes())
    studio, client = _studio(folder, SessionSpec(model=cfg.package))
    try:
        began = time.perf_counter()
        cold = client.get("/api/library").json()
        cold_s = time.perf_counter() - began
        while any(r["duration_s"] is None for r in client.get("/api/library").json()["videos"]):
            time.sleep(0.2)
        indexed_s = time.perf_counter() - began
        warm = []
        for _ in range(max(5, cfg.repeats)):
            answer, trip = _timed(lambda: client.get("/api/library").json())
            warm.append({"server_s": answer["seconds"], "round_trip_s": trip})
    finally:
        studio.close()
    log(f"library of {cfg.library_size}: first listing {cold_s:.2f} s, indexed in "
        f"{indexed_s:.1f} s")
    return {"videos": len(cold["videos"]), "cold_server_s": cold["seconds"],
            "cold_round_trip_s": round(cold_s, 3), "indexed_after_s": round(indexed_s, 2),
            "warm_server_s_median": round(statistics.median(w["server_s"] for w in warm), 4),
            "warm_round_trip_s_median": round(statistics.median(w["round_trip_s"]
                                                                for w in warm), 4),
            "warm": warm}


def _command_run(video: Path, package: Path, report: Path) -> dict:
    command = [sys.executable, "-m", "fsrun.cli", str(video), "--model", str(package),
               "--no-cache", "--force", "--quiet", "--report", str(report)]
    (done, process_s) = _timed(lambda: subprocess.run(command, capture_output=True, text=True))
    if done.returncode != 0:
        raise RuntimeError(f"fsrun failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    report_doc = json.loads(report.read_text())
    # The run without the model session's start-up, which the studio pays once for all jobs.
    return {"run_s": round(report_doc["wall"] - report_doc["session_startup"], 3),
            "wall_s": report_doc["wall"], "process_s": round(process_s, 3)}


def measure_run_overhead(cfg: StudioBenchConfig, log: Callable[[str], None]) -> dict:
    folder = cfg.work / "run"
    video = _clip(folder, cfg.run_seconds, 300, (320, 240))
    studio, client = _studio(folder, SessionSpec(model=cfg.package, use_cache=False))
    studio.jobs.start()
    command, jobs = [], []
    try:
        for repeat in range(cfg.repeats):
            command.append(_command_run(video, cfg.package, cfg.work / "report.json"))
            heard = studio.events.listen()  # as the page does: told, not polling
            client.post("/api/jobs", json={"videos": [video.name], "options": {"force": True}})
            while True:
                event = heard.get(timeout=600)
                job = event.get("job") or {}
                if event["type"] == "job" and job.get("status") not in ("queued", "running"):
                    break
            studio.events.leave(heard)
            if job["status"] != "done":
                raise RuntimeError(f"studio job {job['status']}: {job['detail']}")
            jobs.append(job["finished"] - job["started"])
            log(f"run {repeat + 1}: fsrun {command[-1]['run_s']:.2f} s "
                f"(process {command[-1]['process_s']:.2f} s), studio {jobs[-1]:.2f} s")
    finally:
        studio.close()
    later = jobs[1:] or jobs  # the first job also opens the studio's model session
    run_median = statistics.median(c["run_s"] for c in command)
    return {"video": video.name, "seconds": cfg.run_seconds, "command": command,
            "studio_job_s": [round(j, 3) for j in jobs],
            "command_run_s_median": round(run_median, 3),
            "command_process_s_median": round(statistics.median(c["process_s"]
                                                                for c in command), 3),
            "studio_job_s_median": round(statistics.median(later), 3),
            "studio_over_command": round(statistics.median(later) / run_median, 3)}


CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")  # Debian's, as the tests use


def measure_page(cfg: StudioBenchConfig, log: Callable[[str], None]) -> dict | None:
    """In headless Chromium (when Debian's is installed): the viewer's first paint and its
    first drawing of the cached long video, then post-processing redrawn in the page (the
    round trip and the SVG), for each change. None without a browser."""
    import re  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    if not all(Path(p).exists() for p in CHROMIUM):
        log("no Chromium here: the page's first paint is not measured")
        return None
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    folder = cfg.work / "long"
    video = _clip(folder, cfg.long_minutes * 60.0, 100, cfg.size)
    server = subprocess.Popen([sys.executable, "-m", "fsrun.cli", "studio", str(folder),
                               "--model", str(cfg.package), "--no-browser", "--cache-dir",
                               str(cfg.work / "cache")], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMIUM[1]), options=options)
    try:
        address = re.search(r"http://\S+/\?token=\S+", server.stdout.readline()).group(0)
        began = time.perf_counter()
        driver.get(address.replace("/?", f"/viewer?video={video.name}&"))
        WebDriverWait(driver, 600).until(
            lambda d: d.execute_script("return studio.view.data !== null"))
        drawn_s = time.perf_counter() - began
        paint = driver.execute_script(
            "const p = performance.getEntriesByName('first-contentful-paint')[0]; "
            "return p ? p.startTime : null;")
        redraws = []
        for change in CHANGES:
            id_, value = next(iter(change.items()))
            redraws.append(driver.execute_async_script(
                "const [id, value, done] = arguments; const box = document.querySelector('#' + id);"
                "if (box.type === 'checkbox') box.checked = value; else box.value = value;"
                "const t = performance.now(); redo().then(() => done(performance.now() - t));",
                {"min_amplitude": "min_amplitude", "rdp_epsilon": "rdp_epsilon",
                 "stretch_percentile": "stretch_percentile", "invert": "invert",
                 "offset_ms": "offset_ms", "raw": "raw"}[id_], value))
        points = driver.execute_script("return studio.view.actions.length")
    finally:
        driver.quit()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    log(f"page: first paint {paint:.0f} ms, drawn after {drawn_s:.1f} s, redraw median "
        f"{statistics.median(redraws):.0f} ms")
    return {"first_paint_ms": round(paint, 1) if paint is not None else None,
            "drawn_s": round(drawn_s, 2),
            "redraw_ms_median": round(statistics.median(redraws), 1),
            "redraw_ms_max": round(max(redraws), 1), "redraws": len(redraws),
            "points_last": points}


def measure(cfg: StudioBenchConfig, log: Callable[[str], None]) -> dict:
    from benchmarks.sysinfo import machine_name  # noqa: PLC0415

    cfg.work.mkdir(parents=True, exist_ok=True)
    return {"machine": machine_name(), "package": str(cfg.package),
            "config": {k: str(v) if isinstance(v, Path) else v
                       for k, v in dataclasses.asdict(cfg).items()},
            "post_processing": measure_post_processing(cfg, log),
            "page": measure_page(cfg, log),
            "library": measure_library(cfg, log),
            "run": measure_run_overhead(cfg, log)}


def markdown(results: dict) -> str:
    post, library, run = results["post_processing"], results["library"], results["run"]
    ok = {True: "met", False: "missed"}
    slowest = max(post["redo"], key=lambda r: r["server_ms"])
    first_look = ("decoding and encoding it into the cache" if post["first_look_encoded"]
                  else "the cache held it from an earlier run, so only the head ran")
    rows = [
        (f"post-processing redone on a cached {post['minutes']:g}-min video < 200 ms (server)",
         f"median {post['redo_server_ms_median']:.1f} ms, worst {post['redo_server_ms_max']:.1f}"
         f" ms ({len(post['redo'])} changes)", ok[post["redo_server_ms_max"] < 200]),
        (f"library of {library['videos']} videos answers < 1 s",
         f"{library['warm_server_s_median'] * 1000:.0f} ms (first listing, nothing indexed: "
         f"{library['cold_round_trip_s'] * 1000:.0f} ms)",
         ok[library["warm_round_trip_s_median"] < 1 and library["cold_round_trip_s"] < 1]),
        ("a video scripted from the studio within 5% of `fsrun VIDEO`",
         f"studio {run['studio_job_s_median']:.2f} s, fsrun {run['command_run_s_median']:.2f} s:"
         f" ratio {run['studio_over_command']:.3f}", ok[run["studio_over_command"] <= 1.05]),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    paragraphs = [
        f"- Post-processing: the raw positions of {post['frames']} frames are held in memory; a "
        f"change runs only `postprocess.to_actions` (round trip with JSON: median "
        f"{post['redo_round_trip_ms_median']:.1f} ms). The slowest change was "
        f"`{json.dumps(slowest['change'])}` ({slowest['actions']} actions). The first look at "
        f"the video took {post['first_look_s']:.1f} s ({first_look}). A stride change "
        f"({post['stride_from']} -> {post['stride_to']}) ran the head only: "
        f"{post['stride_server_s']:.2f} s on the server, with {post['stride_progress_events']} "
        f"progress events and {post['encode_events_on_stride_change']} from the encoder.",
        *([f"- The page (headless Chromium, 1400x1000): first paint "
           f"{results['page']['first_paint_ms']:.0f} ms, the {post['minutes']:g}-min video "
           f"drawn {results['page']['drawn_s']:.1f} s after the address was opened (its "
           f"positions from the cache); post-processing redrawn in the page, round trip and "
           f"SVG: median {results['page']['redraw_ms_median']:.0f} ms, worst "
           f"{results['page']['redraw_ms_max']:.0f} ms ({results['page']['redraws']} changes)."]
          if results.get("page") else []),
        f"- Library: every duration was indexed {library['indexed_after_s']:.1f} s after the "
        "first listing (a background thread reads the headers; the page lists again when it "
        "is done).",
        f"- Run: {len(run['command'])} alternating runs of a {run['seconds']:g} s clip "
        "(320x240), no embedding cache on either side. fsrun's time is its report's wall time "
        "less the model session's start-up; a terminal also waits for the interpreter and "
        f"imports (process: {run['command_process_s_median']:.2f} s). The studio's first job "
        "also opened its model session; its median is over the later ones.",
    ]
    return (f"# fsrun studio: its three targets on {results['machine']}\n\n"
            f"Command: `python -m benchmarks studio` (model: `{Path(results['package']).name}`)."
            "\n\n| target | measured | |\n|---|---|---|\n" + table + "\n\n"
            + "\n".join(paragraphs) + "\n")


def write(out: Path, results: dict) -> tuple[Path, Path]:
    return write_json_and_markdown(out, "studio", results, markdown(results))
