"""One video in, one funscript out: decode -> sample -> encode -> windows -> stitch -> write.

`process_video(RunConfig(...))` is the whole run for one file: it opens a model session
(session.py), processes the video and closes the session. To run many videos with one model,
open a ModelSession once instead (folder mode does). The parts: plan.py (backend, decoder,
resize and precision rules), encode.py (the decode thread and encode loop), head.py (the head
and stitching), report.py (metadata and reports).
"""
from __future__ import annotations

import time

from fsrun.backends import create_backend
from fsrun.plan import RESIZE_CHOICES, RunPlan, make_plan, resolve_model, resolve_resize
from fsrun.report import report_failure
from fsrun.runconfig import DEFAULT_STRIDE, RunConfig, RunResult
from fsrun.session import ModelSession

__all__ = ["DEFAULT_STRIDE", "RESIZE_CHOICES", "RunConfig", "RunPlan", "RunResult",
           "ModelSession", "create_backend", "make_plan", "process_video", "resolve_model",
           "resolve_resize"]


def process_video(cfg: RunConfig) -> RunResult:
    """Run the model over one video and write its funscript; raises fsrun.errors classes.

    With cfg.report, a failed run writes a report too: what failed, with which exit code.
    Backends start only after the video's output paths have been checked."""
    began = time.perf_counter()
    try:
        session = ModelSession.open(cfg, start=False)
    except BaseException as exc:
        if cfg.report is not None:
            report_failure(cfg, exc, time.perf_counter() - began)
        raise
    with session:
        return session.process(cfg)
