"""One video through one model session, under the rules every driver shares.

`run_video(session, cfg)` is the one way a video is run: the single-file command line, folder
mode, a Ray worker, the studio's queue and `grade()` all call it. It claims the video's output
(claims.py: another process working on it means this one skips it), applies the skip rules (a
script that exists without --force; one another process wrote while this one waited), runs the
session and writes the script, and returns a FileOutcome: never raises for the video's own
failure, so a folder, a cluster or a queue goes on with the next one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fsrun.atomic import os_reason
from fsrun.claims import STALE_AFTER_S, Claim, ClaimHeld
from fsrun.errors import FsError, Interrupted, OutputError
from fsrun.funscript import default_output
from fsrun.runconfig import RunConfig, RunResult

OK, SKIPPED, FAILED, INTERRUPTED = "ok", "skipped", "failed", "interrupted"
STATUSES: tuple[str, ...] = (OK, SKIPPED, FAILED, INTERRUPTED)


@dataclass
class FileOutcome:
    video: Path  # the video file
    status: str  # ok, skipped, failed or interrupted
    detail: str  # actions written, why skipped, or the one-line error
    seconds: float = 0.0  # wall time spent on it
    exit_code: int = 0  # the error's exit code when failed
    error: FsError | None = None  # the error itself, when failed with an fsrun error
    report: dict | None = None  # the run's report (timings and counts), when it ran
    result: RunResult | None = None  # positions and timestamps, when it ran (not sent by Ray)


def run_video(session, cfg: RunConfig, began_run: float | None = None,
              stale_after_s: float = STALE_AFTER_S) -> FileOutcome:
    """Claim cfg's output, skip or run, write; the outcome. began_run: when the whole run
    started (a script written since by another process is that process's work)."""
    video = Path(cfg.video)
    output = Path(cfg.output) if cfg.output else default_output(video)
    began_run = time.time() if began_run is None else began_run
    began = time.perf_counter()
    if output.exists() and not cfg.force:
        return FileOutcome(video, SKIPPED, f"{output.name} exists (use --force to redo)")
    claim = Claim(output, stale_after_s=stale_after_s)
    try:
        claim.acquire()
    except ClaimHeld as exc:
        return FileOutcome(video, SKIPPED, str(exc))
    except FsError as exc:
        return FileOutcome(video, FAILED, str(exc), exit_code=exc.exit_code, error=exc)
    try:
        # Another process may have finished this video between the check above and the claim.
        if output.exists() and (not cfg.force or output.stat().st_mtime >= began_run):
            return FileOutcome(video, SKIPPED, f"{output.name} was written by another fsrun")
        result = session.process(cfg)
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
                           time.perf_counter() - began, 1)
    finally:
        claim.release()


def describe(result: RunResult) -> str:
    """`27 actions, 3 damaged frames skipped, ...`: what a run wrote, for a table or a page."""
    report = result.report
    detail = f"{result.actions} actions"
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
