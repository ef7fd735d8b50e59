"""The Ray actor of `fsrun DIR --ray`: one model session, any number of videos.

This module never imports Ray: ray_folder wraps FolderWorker with `ray.remote` when a run starts.
A worker opens its session in __init__ (package verified, backends started: Ray's fixed
start-up cost) and keeps any error for ready() and for every video, so the driver reads a broken
model as one fsrun error, not as a dead actor. Each video goes through folder mode's own
per-video step (claim, skip checks, atomic write), on the worker's session.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from fsrun.errors import FsError
from fsrun.folder import FAILED, FileOutcome, process_one
from fsrun.run.request import RunHooks, SessionSpec, VideoRequest
from fsrun.run.session import ModelSession

# A funscript's temporary file (`.NAME.funscript.XXXX.tmp`) lives for milliseconds; one this old
# was left by a process killed while writing, and is removed by the worker that claims the video.
LEFTOVER_TMP_AGE_S = 60.0


class FolderWorker:
    """Holds one model session; process() runs one video and returns its FileOutcome."""

    def __init__(self, spec: SessionSpec, template: VideoRequest, hooks: RunHooks,
                 stale_after_s: float):
        self.template = template  # every video's options (its video is the folder)
        self.stale_after_s = stale_after_s
        self.error: FsError | None = None
        self.session: ModelSession | None = None
        try:
            self.session = ModelSession.open(spec, hooks)
        except FsError as exc:
            self.error = exc

    def ready(self) -> FsError | None:
        """None once the session is open; else the error that stopped it."""
        return self.error

    def plan(self) -> dict | None:
        """The session's run plan (RunPlan.to_dict()), for the folder report."""
        return self.session.plan.to_dict() if self.session is not None else None

    def unreadable(self, paths: list[str]) -> list[str]:
        """The paths this node cannot read (every node must see the videos at the same path)."""
        return [path for path in paths if not os.access(path, os.R_OK)]

    def process(self, video: str, output: str, force: bool, began_run: float) -> FileOutcome:
        if self.error is not None:
            return FileOutcome(Path(video), FAILED, str(self.error),
                               exit_code=self.error.exit_code, error=self.error)
        remove_leftovers(Path(output))
        cfg = dataclasses.replace(self.template, force=force)
        outcome = process_one(self.session, Path(video), Path(output), cfg, began_run,
                              self.stale_after_s)
        return dataclasses.replace(outcome, result=None)  # the driver needs the report only

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def remove_leftovers(output: Path, age_s: float = LEFTOVER_TMP_AGE_S) -> list[Path]:
    """Delete temporary files of output left by a killed writer; returns what was removed."""
    removed = []
    now = time.time()
    for tmp in output.parent.glob(f".{output.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > age_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed
