"""One video through one model session, under the rules every driver shares.

`run_video(session, request, hooks)` is the one way a video is run: the single-file command
line, folder mode, a Ray worker, the studio's queue and `grade()` all call it. It claims the
video's output (claims.py: another process working on it means this one skips it), applies the
skip rules (a script that exists without --force; one another process wrote while this one
waited), runs the session and writes the script, and returns a FileOutcome: never raises for
the video's own failure, so a folder, a cluster or a queue goes on with the next one.

One video named on the command line asks for that video: an existing script without --force
is its error (exit 5, `existing="refuse"`), where a folder, a cluster or a queue skips it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fsrun.files.atomic import os_reason
from fsrun.files.claims import STALE_AFTER_S, Claim, ClaimHeld
from fsrun.errors import FsError, Interrupted, OutputError
from fsrun.files.funscript import default_output
from fsrun.run.report import report_failure
from fsrun.run.request import RunHooks, RunResult, VideoRequest

OK, SKIPPED, FAILED, INTERRUPTED = "ok", "skipped", "failed", "interrupted"
STATUSES: tuple[str, ...] = (OK, SKIPPED, FAILED, INTERRUPTED)


@dataclass
class FileOutcome:
    video: Path  # the video file
    status: str  # ok, skipped, failed or interrupted
    detail: str  # actions written, why skipped, or the one-line error
    seconds: float = 0.0  # wall time spent on it
    exit_code: int = 0  # the error's exit code when failed
    error: BaseException | None = None  # the error itself, when failed
    report: dict | None = None  # the run's report (timings and counts), when it ran
    result: RunResult | None = None  # positions and timestamps, when it ran (not sent by Ray)


# What an existing script means: "skip" (a folder, a cluster, a queue: someone's work is done)
# or "refuse" (one video asked for by name: the session's own check says exists, exit 5).
EXISTING = ("skip", "refuse")


def run_video(session, request: VideoRequest, hooks: RunHooks | None = None,
              began_run: float | None = None, stale_after_s: float = STALE_AFTER_S,
              existing: str = "skip") -> FileOutcome:
    """Claim the request's output, skip or run, write; the outcome. began_run: when the whole
    run started (a script written since by another process is that process's work)."""
    if existing not in EXISTING:
        raise ValueError(f"existing must be one of {EXISTING}, got {existing!r}")
    video = Path(request.video)
    began_run = time.time() if began_run is None else began_run
    began = time.perf_counter()
    skipping = existing == "skip"
    try:
        outputs = list(session.output_paths(request).values())  # every axis's file
    except FsError as exc:  # an axis the model does not give
        return FileOutcome(video, FAILED, without_path(exc, video), exit_code=exc.exit_code,
                           error=exc)
    output = outputs[0]
    if skipping and not request.force:
        done = existing_output(outputs)
        if done:
            return FileOutcome(video, SKIPPED, done)
    # One claim for the video's files together, on the name of the first of them.
    claim = Claim(Path(request.output) if request.output else default_output(video),
                  stale_after_s=stale_after_s)
    try:
        session.check_outputs(request)  # a path no run could write: its own message, no claim
        claim.acquire()
    except ClaimHeld as exc:
        return FileOutcome(video, SKIPPED, str(exc))
    except FsError as exc:
        if request.report is not None:  # a failed run's report, as the session writes one
            report_failure(request, exc, time.perf_counter() - began)
        return FileOutcome(video, FAILED, without_path(exc, video), exit_code=exc.exit_code,
                           error=exc)
    try:
        # Another process may have finished this video between the check above and the claim:
        # a script written since this run began is its work, even with --force; without
        # --force a folder skips any script (one video asked for by name gets the session's
        # own "exists" error instead).
        fresh = any(p.exists() and p.stat().st_mtime >= began_run for p in outputs)
        if fresh or (skipping and not request.force and existing_output(outputs)):
            return FileOutcome(video, SKIPPED, f"{output.name} was written by another fsrun")
        result = session.process(request, hooks)
        return FileOutcome(video, OK, describe(result), time.perf_counter() - began,
                           report=result.report, result=result)
    except FsError as exc:
        status = INTERRUPTED if isinstance(exc, Interrupted) else FAILED
        return FileOutcome(video, status, without_path(exc, video), time.perf_counter() - began,
                           exc.exit_code, exc)
    except OSError as exc:  # a full or failing disk somewhere fsrun writes: this file's loss
        error = OutputError(f"{exc.filename or output}: cannot write ({os_reason(exc)})")
        return FileOutcome(video, FAILED, str(error), time.perf_counter() - began,
                           error.exit_code, error)
    except Exception as exc:  # noqa: BLE001 - an unexpected failure costs this file, not the run
        return FileOutcome(video, FAILED, f"internal error: {type(exc).__name__}: {exc}",
                           time.perf_counter() - began, 1, exc)
    finally:
        claim.release()


def existing_output(outputs: list[Path]) -> str:
    """Why a video whose files (one per axis) exist is skipped; '' when none exists. Files are
    written together: some without the others is said as such."""
    there = [p for p in outputs if p.exists()]
    if not there:
        return ""
    if len(there) == len(outputs):
        names = there[0].name if len(there) == 1 else f"{there[0].name} and its other axes"
        return f"{names} exist{'s' if len(there) == 1 else ''} (use --force to redo)"
    missing = [p.name for p in outputs if not p.exists()]
    return (f"{there[0].name} exists but {missing[0]} does not (use --force to write every "
            "axis again, or --axes for the missing ones)")


def describe(result: RunResult) -> str:
    """`27 actions, 3 damaged frames skipped, ...`: what a run wrote, for a table or a page."""
    report = result.report
    detail = f"{result.actions} actions"
    if len(result.axis_actions) > 1:
        detail = ", ".join(f"{n} {axis} actions" for axis, n in result.axis_actions.items())
    skipped = int(report.get("frames_damaged", 0) or 0)
    if skipped:
        detail += f", {plural(skipped, 'damaged frame')} skipped"
    if report.get("cut_short"):
        first, last = report["covered_ms"]
        detail += (f", frames cover only {first / 1000:.1f}-{last / 1000:.1f} s of "
                   f"{report['duration_s']:.1f} s (cut off?)")
    if result.padded:
        detail += ", shorter than one window (padded)"
    if report.get("resumed_from"):
        detail += f", resumed after {report['resumed_from']} cached frames"
    return detail


def without_path(exc: Exception, video: Path) -> str:
    """The error without its leading "VIDEO: ", which a table already shows."""
    text = str(exc)
    prefix = f"{video}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
