"""One video in, one funscript out: decode -> sample -> encode -> windows -> stitch -> write.

`process_video(spec, request)` is the whole run for one file: it opens a model session
(session.py) from the spec, runs the video through the one runner (runner.py: the claim and its
rules) and closes the session. To run many videos with one model, open a ModelSession once
instead (folder mode does). The parts: plan.py (backend, decoder, resize and precision rules),
encode.py (the decode thread and encode loop), head.py (the head and stitching), report.py
(metadata and reports).
"""
from __future__ import annotations

import time

from fsrun.backends import create_backend
from fsrun.defaults import DEFAULT_STRIDE
from fsrun.errors import OutputError
from fsrun.run.plan import RunPlan, make_plan, resolve_model, resolve_resize
from fsrun.run.report import report_failure
from fsrun.run.request import (RESIZE_CHOICES, RunHooks, RunResult, SessionSpec, VideoRequest)
from fsrun.run.runner import OK, SKIPPED, run_video
from fsrun.run.session import ModelSession

__all__ = ["DEFAULT_STRIDE", "RESIZE_CHOICES", "RunHooks", "RunPlan", "RunResult",
           "ModelSession", "SessionSpec", "VideoRequest", "create_backend", "make_plan",
           "process_video", "resolve_model", "resolve_resize"]


def process_video(spec: SessionSpec, request: VideoRequest,
                  hooks: RunHooks | None = None) -> RunResult:
    """Run the model over one video and write its funscript; raises fsrun.errors classes.

    With request.report, a failed run writes a report too: what failed, with which exit code.
    Backends start only after the video's output paths have been checked."""
    hooks = hooks or RunHooks()
    began = time.perf_counter()
    try:
        session = ModelSession.open(spec, hooks, start=False)
    except BaseException as exc:
        if request.report is not None:
            report_failure(request, exc, time.perf_counter() - began)
        raise
    with session:
        outcome = run_video(session, request, hooks, existing="refuse")
    if outcome.status == OK:
        return outcome.result
    if outcome.error is not None:
        raise outcome.error
    if outcome.status == SKIPPED:  # another fsrun holds it, or wrote it meanwhile
        raise OutputError(f"{request.video}: {outcome.detail}")
    raise RuntimeError(outcome.detail)  # an unexpected failure inside the runner
