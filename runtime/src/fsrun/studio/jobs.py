"""The studio's queue: videos to script, one worker thread, one ModelSession for all of them.

The same engine and rules as `fsrun FOLDER`: each job is `runner.run_video(session,
VideoRequest(...), RunHooks(...))` with the job's options (the claim and the skip rules
included), so a script written from the studio has the actions `fsrun VIDEO` writes with those
options, and a folder run beside the studio never writes a video the queue is writing. Progress
(frames done, rate, ETA) goes to every page listening (app.py's EventHub, which never waits for
a page); a queued job can be removed and a running one cancelled at its next encoder batch
(nothing written, the cache kept). The queue is saved on every change and read back at start,
so it survives a restart of the studio (a job that was running is queued again).
"""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from fsrun.errors import FsError, Interrupted
from fsrun.run.postprocess import PostprocessOptions
from fsrun.run import runner
from fsrun.run.request import RunHooks, RunWatch, SessionSpec, VideoRequest
from fsrun.run.runner import INTERRUPTED, OK, run_video
from fsrun.studio.security import video_file
from fsrun.studio.state import StudioState
from fsrun.studio.words import page_words

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
SKIPPED = "skipped"
PROGRESS_EVERY_S = 0.25  # progress events a job publishes: at most four a second
# A run's outcome (runner.py) -> the job's status.
OUTCOME_STATUS = {runner.OK: DONE, runner.SKIPPED: SKIPPED, runner.FAILED: FAILED,
                  runner.INTERRUPTED: CANCELLED}
# The per-job options a person may set; everything else is the session's.
JOB_OPTIONS = ("stride", "crop", "force", "raw", "min_amplitude", "rdp_epsilon",
               "stretch_percentile", "invert", "offset_ms")


def job_request(video: Path, options: dict[str, Any]) -> VideoRequest:
    """The VideoRequest of one job: the video and the job's options."""
    post = PostprocessOptions.from_options(options)
    per_video = {k: options[k] for k in ("stride", "crop", "force") if k in options}
    return VideoRequest(video=video, postprocess=post, **per_video)


class JobQueue:
    def __init__(self, root: Path, state: StudioState, spec: SessionSpec, hooks: RunHooks,
                 publish: Callable[[dict], None]):
        self.root, self.state, self.spec, self.publish = Path(root), state, spec, publish
        self.hooks = hooks  # the session's: quiet, no bar (each job adds its watch)
        self.lock = state.queue.lock  # the one lock of the queue's state: edits and saves
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.session: Any = None  # opened with the first job, kept for every later one
        self.stale = False  # the model changed: the next job opens a session on the new one
        self.cancel_requested: set[str] = set()
        with self.lock:
            for job in self.state.queue.data["jobs"]:
                if job["status"] == RUNNING:  # the studio stopped mid-job: run it again
                    job.update(status=QUEUED, detail="queued again after a restart")
            self.state.queue.save()
        self.thread = threading.Thread(target=self._work, name="fsrun-studio-worker",
                                       daemon=True)

    @property
    def jobs(self) -> list[dict]:
        return self.state.queue.data["jobs"]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            self.cancel_requested |= {j["id"] for j in self.jobs if j["status"] == RUNNING}
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        if self.session is not None:
            self.session.close()

    def use(self, spec: SessionSpec) -> None:
        """Another model for the jobs that start from now on (a running one finishes on its)."""
        with self.lock:
            self.spec, self.stale = spec, True
        self.wake.set()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return [dict(job) for job in self.jobs]

    def add(self, videos: list[str], options: dict[str, Any]) -> list[dict]:
        """Queue each video (a path relative to the folder) with the given options."""
        clean = {k: v for k, v in options.items() if k in JOB_OPTIONS}
        added = []
        with self.lock:
            for name in videos:
                video_file(self.root, name)  # refuses anything but a video of the folder now
                active = [j for j in self.jobs if j["video"] == name
                          and j["status"] in (QUEUED, RUNNING)]
                if active:
                    continue
                job = {"id": uuid.uuid4().hex[:12], "video": name,
                       "options": {**self.state.settings(name), **clean}, "status": QUEUED,
                       "detail": "", "added": time.time(), "progress": None}
                self.jobs.append(job)
                added.append(dict(job))
            self.state.queue.save()
        for job in added:
            self.publish({"type": "job", "job": job})
        self.wake.set()
        return added

    def cancel(self, job_id: str) -> dict | None:
        with self.lock:
            job = next((j for j in self.jobs if j["id"] == job_id), None)
            if job is None:
                return None
            if job["status"] == QUEUED:
                job.update(status=CANCELLED, detail="removed from the queue")
                self.state.queue.save()
            elif job["status"] == RUNNING:
                self.cancel_requested.add(job_id)
                job["detail"] = "cancelling at the next batch"
            snapshot = dict(job)
        self.publish({"type": "job", "job": snapshot})
        return snapshot

    @property
    def paused(self) -> bool:
        return bool(self.state.queue.data.get("paused"))

    def pause(self, paused: bool) -> None:
        """Stop taking new jobs (the one running finishes), or take them again; kept across
        restarts."""
        with self.lock:
            self.state.queue.data["paused"] = bool(paused)
            self.state.queue.save()
        self.publish({"type": "queue"})
        self.wake.set()

    def move(self, job_id: str, direction: str) -> dict | None:
        """Move a queued job one place up or down among the queued ones."""
        if direction not in ("up", "down"):
            raise ValueError("direction must be up or down")
        with self.lock:
            queued = [i for i, j in enumerate(self.jobs) if j["status"] == QUEUED]
            here = next((i for i in queued if self.jobs[i]["id"] == job_id), None)
            if here is None:
                return None
            place = queued.index(here) + (-1 if direction == "up" else 1)
            if 0 <= place < len(queued):
                there = queued[place]
                self.jobs[here], self.jobs[there] = self.jobs[there], self.jobs[here]
                self.state.queue.save()
            snapshot = dict(self.jobs[queued[max(0, min(place, len(queued) - 1))]])
        self.publish({"type": "queue"})
        return snapshot

    def clear_finished(self) -> None:
        with self.lock:
            self.jobs[:] = [j for j in self.jobs if j["status"] in (QUEUED, RUNNING)]
            self.state.queue.save()
        self.publish({"type": "queue"})

    def _next(self) -> dict | None:
        with self.lock:
            if self.paused:
                return None
            job = next((j for j in self.jobs if j["status"] == QUEUED), None)
            if job is not None:
                job.update(status=RUNNING, started=time.time(), detail="starting")
                self.state.queue.save()
            return job

    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self._next()
            if job is None:
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                continue
            self.publish({"type": "job", "job": dict(job)})
            self._run(job)
            self.publish({"type": "job", "job": dict(job)})
            self.publish({"type": "library"})

    def _session(self) -> Any:
        from fsrun.run.session import ModelSession  # noqa: PLC0415

        with self.lock:
            spec, stale, self.stale = self.spec, self.stale, False
        if stale and self.session is not None:
            self.session.close()
            self.session = None
        if self.session is None:
            self.session = ModelSession.open(spec, self.hooks, start=False)
        return self.session

    def _run(self, job: dict) -> None:
        began = time.perf_counter()

        told = [0.0]  # when progress was last published

        def progress(done: int, total: int | None) -> None:
            if total:  # the expected count is an estimate: never show more than all of it
                total = max(total, done)
            job["detail"] = "encoding"
            elapsed = max(time.perf_counter() - began, 1e-6)
            rate = done / elapsed
            eta = (total - done) / rate if total and rate > 0 else None
            job["progress"] = {"frames": done, "total": total, "rate": round(rate, 1),
                               "eta_s": None if eta is None else round(max(eta, 0.0), 1)}
            now = time.monotonic()  # a few events a second: pages redraw what they hear
            if now - told[0] >= PROGRESS_EVERY_S or (total and done >= total):
                told[0] = now
                self.publish({"type": "progress", "id": job["id"], "progress": job["progress"]})

        watch = RunWatch(progress=progress, cancelled=lambda: job["id"] in self.cancel_requested)
        try:
            video = video_file(self.root, job["video"])
            session = self._session()
            request = job_request(video, job["options"])
            hooks = dataclasses.replace(self.hooks, watch=watch)
            # The command line's runner: the claim (a `fsrun FOLDER` on the same folder and
            # this queue never both write a video) and the skip rules come with it.
            # A script another process wrote after the job was queued is that process's work,
            # even with force (the person asked for this video once, not twice).
            outcome = run_video(session, request, hooks, began_run=job["added"])
            status, detail = OUTCOME_STATUS[outcome.status], outcome.detail
            if outcome.status == INTERRUPTED and self.stopping.is_set():
                # The studio stopped (Ctrl-C), not the person: the job runs again at the next
                # start, resuming from what the cache holds.
                status, detail = QUEUED, "queued again: the studio stopped while it ran"
            elif outcome.status == INTERRUPTED and outcome.exit_code == Interrupted.exit_code:
                detail = "cancelled; what was encoded stays in the cache"
            elif outcome.status == OK:
                detail = (f"{detail} from {outcome.report['frames']} frames in "
                          f"{time.perf_counter() - began:.1f} s")
        except (FsError, ValueError) as exc:
            status, detail = FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the queue
            status, detail = FAILED, f"internal error: {type(exc).__name__}: {exc}"
        with self.lock:
            self.cancel_requested.discard(job["id"])
            job.update(status=status, detail=page_words(detail), finished=time.time())
            self.state.queue.save()
