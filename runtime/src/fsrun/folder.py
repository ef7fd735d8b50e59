"""`fsrun DIR`: every video under a folder, one bad file costing one line, never the run.

Videos are found recursively by extension, those with a funscript already are skipped unless
--force, each video is claimed before work (see claims.py) so several fsrun processes can share
a folder, per-file errors are recorded and the loop goes on, and a summary table ends the run.
Errors that would repeat for every file (the model, a missing library, bad options) stop it.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from fsrun.files.atomic import os_reason
from fsrun.files.claims import STALE_AFTER_S
from fsrun.errors import (FsError, InputError, Interrupted, MissingDependencyError, ModelError,
                          OutputError, UsageError)
from fsrun.files.funscript import default_output
from fsrun.files.outputs import Protected, check_report_path, write_report
from fsrun.run.request import RunHooks, SessionSpec, VideoRequest
from fsrun.run.runner import (FAILED, INTERRUPTED, OK, SKIPPED, STATUSES, FileOutcome, plural,
                          run_video)
from fsrun.run.session import ModelSession
from fsrun.signals import interrupt_requested, raise_if_interrupted

DEFAULT_EXTENSIONS: tuple[str, ...] = ("mp4", "m4v", "mkv", "webm", "mov", "avi", "wmv", "flv",
                                       "ts", "m2ts", "mts", "mpg", "mpeg", "3gp", "ogv")
# Errors that would fail every remaining file the same way: stop instead of repeating them.
FATAL_ERRORS: tuple[type[FsError], ...] = (ModelError, MissingDependencyError, UsageError,
                                           Interrupted)


@dataclass
class FolderSummary:
    root: Path  # the folder processed
    outcomes: list[FileOutcome] = field(default_factory=list)  # one per video found
    stopped: str | None = None  # why the loop ended early, if it did
    found: int = 0  # videos found under root
    plan: dict | None = None  # the run plan (RunPlan.to_dict()) of the folder's model session

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> int:
        return self.count(FAILED)


def parse_extensions(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'mp4,.MKV webm' -> ('mp4', 'mkv', 'webm'); None -> the default list."""
    if text is None:
        return DEFAULT_EXTENSIONS
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    extensions = tuple(dict.fromkeys(p.strip().lstrip(".").lower() for p in parts if p.strip()))
    if not extensions:
        raise UsageError("--ext needs at least one extension, e.g. --ext mp4,mkv")
    return extensions


def find_videos(root: Path, extensions: Iterable[str] = DEFAULT_EXTENSIONS) -> list[Path]:
    """Videos under root, sorted; hidden files and folders (and macOS ._ files) are left out."""
    wanted = {e.lower().lstrip(".") for e in extensions}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or name.rpartition(".")[2].lower() not in wanted:
                continue
            found.append(Path(folder) / name)
    return sorted(found)


def output_for(video: Path, root: Path, output_dir: Path | None) -> Path:
    """VIDEO.funscript beside the video, or at the same place under output_dir (the tree
    mirrored)."""
    if output_dir is None:
        return default_output(video)
    return default_output(Path(output_dir) / Path(video).relative_to(root))


def process_folder(root: Path | str, spec: SessionSpec, request: VideoRequest | None = None,
                   hooks: RunHooks | None = None,
                   extensions: Iterable[str] = DEFAULT_EXTENSIONS,
                   log: Callable[[str], None] | None = None,
                   stale_after_s: float = STALE_AFTER_S,
                   output_dir: Path | None = None) -> FolderSummary:
    """Run every video under root through one model session; never raises for a single bad
    file. request: the options every video gets (its video is the folder); hooks: the
    session's (the videos' own notices are summed up in the folder's lines)."""
    root = Path(root)
    say = log or (lambda message: None)
    request = request or VideoRequest(video=root)
    hooks = hooks or RunHooks(quiet=True)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    if request.output is not None:
        raise UsageError("--output names one file; in folder mode each video gets "
                         "VIDEO.funscript beside it")
    # One session for the folder: the package is loaded and verified once (a broken model
    # fails here, exit 4, not once per video), the backends start with the first video that
    # needs them and serve every video after it.
    with ModelSession.open(spec, hooks, start=False) as session:
        for notice in session.plan.notices:
            say(notice)
        return _process_all(root, session, request, extensions, say, stale_after_s,
                            output_dir)


def _process_all(root: Path, session: ModelSession, template: VideoRequest,
                 extensions: Iterable[str], say: Callable[[str], None],
                 stale_after_s: float, output_dir: Path | None) -> FolderSummary:
    report_path = template.report  # one report for the folder, not one per video
    videos = find_videos(root, extensions)
    # No output may replace any video found here (an output named like one, or --ext funscript).
    protected = Protected(videos, "a video being processed")
    if report_path is not None:
        check_report_path(report_path, None, protected)  # before the first video, not after
    template = dataclasses.replace(template, report=None, protected=protected)
    summary = FolderSummary(root, plan=session.plan.to_dict())
    summary.found = len(videos)
    if not videos:
        if report_path is not None:
            summary.stopped = "no videos found"
            write_report(Path(report_path), folder_report(summary))
        raise InputError(f"{root}: no videos found (looked for "
                         f"{', '.join('.' + e for e in extensions)})")
    say(f"{plural(len(videos), 'video')} under {root}")
    owners = Counter(output_for(v, root, output_dir) for v in videos)
    first_owner: dict[Path, Path] = {}
    began_run = time.time()
    for index, video in enumerate(videos, 1):
        if interrupt_requested() is not None:
            summary.stopped = "interrupted"
            break
        output = output_for(video, root, output_dir)
        if owners[output] > 1 and first_owner.setdefault(output, video) != video:
            outcome = FileOutcome(video, SKIPPED, f"{output.name} belongs to "
                                  f"{first_owner[output].name} (same name)")
        else:
            outcome = process_one(session, video, output, template, began_run, stale_after_s)
        summary.outcomes.append(outcome)
        say(f"[{index}/{len(videos)}] {outcome.status:7} {relative_name(video, root)}: {outcome.detail}")
        if isinstance(outcome.error, FATAL_ERRORS):
            summary.stopped = outcome.detail
            break
    summary.plan = session.plan.to_dict()  # a fallback at the first start may have changed it
    if report_path is not None:
        write_report(Path(report_path), folder_report(summary))
    return summary


def folder_report(summary: FolderSummary) -> dict:
    """--report in folder mode: every video's outcome, with its run report where it ran."""
    return {"root": str(summary.root), "found": summary.found, "stopped": summary.stopped,
            "plan": summary.plan,
            "counts": {status: summary.count(status) for status in STATUSES},
            "files": [{"video": str(o.video), "status": o.status, "detail": o.detail,
                       "seconds": round(o.seconds, 3), "exit_code": o.exit_code,
                       "report": o.report} for o in summary.outcomes]}


def process_one(session: ModelSession, video: Path, output: Path, template: VideoRequest,
                began_run: float, stale_after_s: float) -> FileOutcome:
    """One video of a folder: its output's folder made (the tree mirrored under --output-dir),
    then the one runner."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error = OutputError(f"{output.parent}: cannot create ({os_reason(exc)})")
        return FileOutcome(video, FAILED, str(error), exit_code=error.exit_code, error=error)
    return run_video(session, dataclasses.replace(template, video=video, output=output),
                     began_run=began_run, stale_after_s=stale_after_s)


def relative_name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _totals(summary: FolderSummary) -> str:
    """`2 ok, 1 skipped, 0 failed`, then `, 1 interrupted` when one was."""
    text = f"{summary.count(OK)} ok, {summary.count(SKIPPED)} skipped, {summary.failed} failed"
    interrupted = summary.count(INTERRUPTED)
    return text + (f", {interrupted} interrupted" if interrupted else "")


def _progress_note(summary: FolderSummary) -> str:
    return (f"{summary.count(OK)} done, {summary.count(SKIPPED)} skipped, {summary.failed} failed,"
            f" {summary.found - len(summary.outcomes)} not started")


def format_summary(summary: FolderSummary, width: int = 60) -> str:
    """A plain-text table: status, file, detail; then the totals line."""
    rows = [(o.status, relative_name(o.video, summary.root), o.detail) for o in summary.outcomes]
    name_width = min(width, max([len("file")] + [len(r[1]) for r in rows]))
    status_width = max([8] + [len(r[0]) for r in rows])
    lines = [f"{'status':{status_width}} {'file':{name_width}}  detail",
             f"{'-' * status_width} {'-' * name_width}  ------"]
    for status, name, detail in rows:
        if len(name) > name_width:
            name = "..." + name[-(name_width - 3):]
        lines.append(f"{status:{status_width}} {name:{name_width}}  {detail}")
    lines.append(_totals(summary))
    if summary.stopped:
        lines.append(f"stopped early: {summary.stopped}")
    return "\n".join(lines)


def _failures(summary: FolderSummary, shown: int = 3) -> str:
    """`: a.mp4 (why), b.mp4 (why) and 2 more`: the table's failed rows on one line."""
    failed = [o for o in summary.outcomes if o.status == FAILED]
    text = ", ".join(f"{relative_name(o.video, summary.root)} ({o.detail})" for o in failed[:shown])
    return ": " + text + (f" and {len(failed) - shown} more" if len(failed) > shown else "")


class FolderFailed(FsError):
    """Some videos in a folder failed; the table says which and why."""

    exit_code = 1


def run_folder(root: Path, spec: SessionSpec, request: VideoRequest, hooks: RunHooks,
               extensions: Iterable[str], echo: Callable[[str], None],
               log: Callable[[str], None] | None, output_dir: Path | None = None
               ) -> FolderSummary:
    """CLI entry: process, print the table (not with --quiet), raise for a non-zero exit when
    anything failed."""
    summary = process_folder(root, spec, request, hooks, extensions, log,
                             output_dir=output_dir)
    return finish_folder(summary, hooks, echo)


def finish_folder(summary: FolderSummary, hooks: RunHooks,
                  echo: Callable[[str], None]) -> FolderSummary:
    """The end of a folder run (one process or Ray): the table, then the exit status."""
    if not hooks.quiet:
        echo(format_summary(summary))
    fatal = next((o.error for o in summary.outcomes if isinstance(o.error, FATAL_ERRORS)), None)
    if fatal is not None:
        raise fatal
    # A signal between two videos: what was done stays done, the rest waits for a re-run.
    raise_if_interrupted(_progress_note(summary))
    if summary.failed:
        raise FolderFailed(f"{summary.failed} of {plural(len(summary.outcomes), 'video')} failed"
                           + (_failures(summary) if hooks.quiet
                              else " (see the table above)"))
    return summary
