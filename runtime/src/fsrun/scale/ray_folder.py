"""`fsrun DIR --ray [ADDRESS]`: a folder's videos as tasks on Ray actors.

The driver (this process) finds the videos, decides which need work (same_run.py: a script made
with the same model and options is skipped), starts one actor per GPU, or per `actor_cpus` CPUs
on a cluster without GPUs, and keeps one video in flight on each. A worker writes its funscript
atomically (temporary file, then link) under the same per-video claim as folder mode, so a
killed worker or driver leaves no half-written script and a re-run picks up where it stopped.
A video whose worker died (or failed with an unexpected error) runs once more on another actor,
then is reported. The report is folder mode's (folder.folder_report), the table too.

Ray is imported when a run starts, never at module level.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from fsrun.files.claims import STALE_AFTER_S
from fsrun.errors import InputError, MissingDependencyError, UsageError
from fsrun.axes import SINGLE
from fsrun.run.axis_outputs import chosen_axes, output_paths
from fsrun.folder import (FAILED, FATAL_ERRORS, INTERRUPTED, OK, SKIPPED, FileOutcome,
                          FolderSummary, find_videos, finish_folder, folder_report, output_for,
                          plural, relative_name)
from fsrun.files.outputs import Protected, check_folder_writable, check_report_path, write_report
from fsrun.model.package import load_package
from fsrun.run.plan import resolve_model
from fsrun.progress import clock_text
from fsrun.run.request import RunHooks, SessionSpec, VideoRequest
from fsrun.scale.cluster import (DEFAULT_STARTUP_TIMEOUT_S, ClusterStartError, Slot, alive_nodes,
                                 describe, plan_slots, root_cause, wait_until_started)
from fsrun.scale.same_run import compare, run_signature
from fsrun.scale.worker import FolderWorker
from fsrun.signals import interrupt_requested

# Further attempts for a video whose worker died or failed unexpectedly, each on another actor.
RETRIES = 1


@dataclass
class _Job:
    index: int  # position in the sorted video list (the table keeps that order)
    video: Path  # the video file
    output: Path  # its funscript
    force: bool  # replace an existing funscript (--force, or one made another way)
    replaces: str | None = None  # why an existing script is made again
    attempts: int = 0  # times sent to a worker
    tried: set[int] = field(default_factory=set)  # actors it ran on
    blocked: set[str] = field(default_factory=set)  # nodes that cannot read the video


@dataclass
class RayRun:
    summary: FolderSummary  # what folder mode returns
    startup_s: float = 0.0  # Ray's fixed cost: ray.init and every actor's session ready
    actors: int = 0  # actors started (replacements not counted)
    nodes: int = 0  # nodes they run on
    actor_options: dict = field(default_factory=dict)  # resources the first actor reserved
    retried: int = 0  # attempts repeated after a worker died or failed unexpectedly


def _import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - only behind --ray
    except ImportError:
        raise MissingDependencyError("Ray (for --ray)", "fsrun[ray]") from None
    return ray


def _plan(root: Path, videos: list[Path], template: VideoRequest, output_dir: Path | None,
          signature: dict, axes: tuple[str, ...] = SINGLE
          ) -> tuple[list[_Job], list[FileOutcome]]:
    """The videos to run, and those skipped now (same scripts exist, name taken, not ours).
    A video's files (one per axis of `axes`) are judged together."""
    jobs, skipped = [], []
    owners = Counter(output_for(v, root, output_dir) for v in videos)
    first_owner: dict[Path, Path] = {}
    for index, video in enumerate(videos):
        output = output_for(video, root, output_dir)
        if owners[output] > 1 and first_owner.setdefault(output, video) != video:
            skipped.append(FileOutcome(video, SKIPPED, f"{output.name} belongs to "
                                       f"{first_owner[output].name} (same name)"))
            continue
        outputs = list(output_paths(video, output, axes, template.multi_axis_file).values())
        there = [p for p in outputs if p.exists()]
        if template.force or not there:
            jobs.append(_Job(index, video, output, template.force))
            continue
        verdicts = [(p, compare(p, signature)) for p in there]
        foreign = next(((p, v) for p, v in verdicts if not v.by_fsrun), None)
        if foreign is not None:
            skipped.append(FileOutcome(video, SKIPPED, f"{foreign[0].name} exists, "
                                       f"{foreign[1].why} (use --force to replace it)"))
        elif len(there) == len(outputs) and all(v.same for _, v in verdicts):
            skipped.append(FileOutcome(video, SKIPPED, f"{there[0].name} exists "
                                       f"({verdicts[0][1].why})"))
        else:  # fsrun's, made another way or with an axis missing: made again, all together
            differ = next((v.why for _, v in verdicts if not v.same), "an axis file is missing")
            jobs.append(_Job(index, video, output, True, differ))
    return jobs, skipped


class _ClusterProgress:
    """One line on stderr: videos done, frames/s across the cluster, ETA."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.done = self.frames = 0
        self.began = time.perf_counter()

    def add(self, outcome: FileOutcome) -> None:
        self.done += 1
        self.frames += int((outcome.report or {}).get("frames_encoded", 0) or 0)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.began, 1e-9)
        eta = (clock_text((self.total - self.done) * elapsed / self.done) if self.done else "?")
        filled = int(30 * self.done / max(self.total, 1))
        return (f"[{'#' * filled}{'-' * (30 - filled)}] {self.done}/{self.total} videos  "
                f"{self.frames / elapsed:.1f} frames/s  ETA {eta}")

    def say(self, log: Callable[[str], None] | None, message: str) -> None:
        """A log line above the bar, then the bar again."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
        if log is not None:
            log(message)
        if self.enabled:
            sys.stderr.write(self.line())
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K" + self.line() + "\n")
            sys.stderr.flush()


def process_ray_folder(root: Path | str, spec: SessionSpec, template: VideoRequest,
                       hooks: RunHooks, extensions: Iterable[str],
                       log: Callable[[str], None] | None = None,
                       address: str | None = None, output_dir: Path | None = None,
                       actor_cpus: int | None = None,
                       stale_after_s: float = STALE_AFTER_S,
                       startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> RayRun:
    """Every video under root on Ray actors; never raises for a single bad file."""
    root = Path(root)
    say = log or (lambda message: None)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    ray = _import_ray()
    if template.output is not None:
        raise UsageError("--output names one file; in folder mode each video gets "
                         "VIDEO.funscript beside it (or under --output-dir)")
    # A broken model fails here (exit 4), before Ray starts. No plan is made on the driver:
    # its backends (often none: a CPU head node) are not the workers'.
    model_path, notice = resolve_model(spec.model, spec.model_fps, None, spec.cache_dir)
    if notice:
        say(notice)
    package = load_package(model_path)
    model_hash = package.model_hash
    axes = chosen_axes(template.axes, package.meta.axis_names, template.multi_axis_file)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        check_folder_writable(Path(output_dir))
    videos = find_videos(root, extensions)
    protected = Protected(videos, "a video being processed")
    report_path = template.report
    if report_path is not None:
        check_report_path(report_path, None, protected)
    summary = FolderSummary(root, found=len(videos))
    if not videos:
        summary.stopped = "no videos found"
        if report_path is not None:
            write_report(Path(report_path), folder_report(summary))
        raise InputError(f"{root}: no videos found (looked for "
                         f"{', '.join('.' + e for e in extensions)})")
    # Workers get absolute paths: their working folder is not this one.
    cache_dir = Path(spec.cache_dir).absolute() if spec.cache_dir else None
    spec = dataclasses.replace(spec, model=Path(model_path).absolute(), model_fps=None,
                               cache_dir=cache_dir)
    template = dataclasses.replace(template, report=None, protected=protected)
    worker_hooks = RunHooks(quiet=True, backend_factory=hooks.backend_factory)
    jobs, skipped = _plan(root, videos, template, output_dir,
                          run_signature(spec, template, model_hash), axes)
    say(f"{plural(len(videos), 'video')} under {root}: {len(jobs)} to run, "
        f"{len(skipped)} skipped")
    run = RayRun(summary)
    outcomes: dict[Path, FileOutcome] = {o.video: o for o in skipped}
    # Largest files first: the last videos to finish are short ones, so actors idle less at the
    # end (the table and report keep path order).
    jobs.sort(key=lambda job: -_size(job.video))
    if jobs:
        _run_on_ray(ray, run, jobs, outcomes, (spec, template, worker_hooks), root, say,
                    address, actor_cpus, stale_after_s, startup_timeout_s, hooks.quiet)
    order = {video: i for i, video in enumerate(videos)}
    summary.outcomes = sorted(outcomes.values(), key=lambda o: order[o.video])
    if report_path is not None:
        write_report(Path(report_path), folder_report(summary))
    return run


def _run_on_ray(ray: Any, run: RayRun, jobs: list[_Job], outcomes: dict[Path, FileOutcome],
                work: tuple[SessionSpec, VideoRequest, RunHooks], root: Path,
                say: Callable[[str], None],
                address: str | None, actor_cpus: int | None, stale_after_s: float,
                startup_timeout_s: float, quiet: bool) -> None:
    began = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        if not address:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local instance: no calls home
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot start or reach Ray at {address or 'a local instance'}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
    pool = _Pool(ray, work, stale_after_s)
    try:
        places = plan_slots(alive_nodes(ray), len(jobs), actor_cpus)
        actors = _start_workers(ray, pool, places, startup_timeout_s, say)
        _check_videos(ray, actors, jobs, outcomes, say)
        run.actors, run.actor_options = len(actors), dict(actors[0].place.options)
        run.nodes = len({actor.place.node.node_id for actor in actors})
        run.summary.plan = ray.get(actors[0].handle.plan.remote())  # as folder mode reports
        run.startup_s = time.perf_counter() - began
        say(f"ray: {plural(len(actors), 'worker')} on {plural(run.nodes, 'node')} "
            f"({describe(actors[0].place)} each) ready in {run.startup_s:.1f} s")
        runnable = [job for job in jobs if job.video not in outcomes]
        _dispatch(ray, run, pool, actors, deque(runnable), outcomes, root, say, quiet)
    finally:
        pool.close()
        if started_here:
            ray.shutdown()


def _start_workers(ray: Any, pool: _Pool, places: list[Slot], timeout_s: float,
                   say: Callable[[str], None]) -> list[_Actor]:
    """Start an actor at every place; those that cannot start are reported (one line naming
    the node) and left out. Raises when none started: the workers' own fsrun error (a model
    no node can read) or ClusterStartError."""
    actors = [pool.start(place) for place in places]
    refs = {actor.handle.ready.remote(): actor for actor in actors}
    outcome = wait_until_started(ray, {ref: actor.place for ref, actor in refs.items()},
                                 timeout_s, say)
    ready, errors = [], []
    for ref, actor in refs.items():
        if outcome[ref] is None:
            ready.append(actor)
            continue
        why, error = outcome[ref]
        say(f"ray: {why}")
        errors.append((why, error))
        pool.drop(actor)
    if ready:
        return ready
    fsrun_error = next((error for _why, error in errors if error is not None), None)
    if fsrun_error is not None:  # e.g. a model no node can use: its own exit code
        raise fsrun_error
    raise ClusterStartError(f"ray: no worker could start: {errors[0][0]}")


def _check_videos(ray: Any, actors: list[_Actor], jobs: list[_Job],
                  outcomes: dict[Path, FileOutcome], say: Callable[[str], None]) -> None:
    """Ask one worker per node which videos it cannot read; such a video runs on the other
    nodes, or fails now when no node can read it (never waited on)."""
    per_node = {actor.place.node.node_id: actor for actor in actors}
    paths = [str(job.video.absolute()) for job in jobs]
    answers = ray.get([actor.handle.unreadable.remote(paths) for actor in per_node.values()])
    for (node_id, actor), missing in zip(per_node.items(), answers):
        if not missing:
            continue
        say(f"ray: {actor.place.node.address} cannot read {plural(len(missing), 'video')} "
            f"(e.g. {missing[0]}); every node must see the videos at the same path "
            "(docs/scale.md)")
        for job in jobs:
            if str(job.video.absolute()) in missing:
                job.blocked.add(node_id)
    for job in jobs:
        if set(per_node) <= job.blocked:
            outcomes[job.video] = FileOutcome(job.video, FAILED, "no Ray node can read it "
                                              "(every node must see the videos at the same "
                                              "path)", exit_code=InputError.exit_code)


@dataclass
class _Actor:
    id: int  # unique per actor, replacements included
    handle: Any  # the Ray actor handle
    place: Slot  # the node it is pinned to and the resources it holds


class _Pool:
    """Starts, replaces and finally stops the worker actors."""

    def __init__(self, ray: Any, work: tuple[SessionSpec, VideoRequest, RunHooks],
                 stale_after_s: float):
        self.ray, self.work, self.stale_after_s = ray, work, stale_after_s
        self.remote = ray.remote(FolderWorker)
        self.actors: dict[int, _Actor] = {}

    def start(self, place: Slot, strict: bool = True) -> _Actor:
        """An actor pinned to place's node (strict: only there; else there if it can)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        extra: dict[str, Any] = {"max_restarts": 0, "scheduling_strategy":
                                 NodeAffinitySchedulingStrategy(place.node.node_id,
                                                                soft=not strict)}
        options = place.options
        spec, template, hooks = self.work
        threads = spec.threads or (0 if "num_gpus" in options else int(options["num_cpus"]))
        handle = self.remote.options(**options, **extra).remote(
            dataclasses.replace(spec, threads=threads), template, hooks, self.stale_after_s)
        actor = _Actor(max(self.actors, default=-1) + 1, handle, place)
        self.actors[actor.id] = actor
        return actor

    def drop(self, actor: _Actor) -> None:
        self.actors.pop(actor.id, None)
        try:
            self.ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def replace(self, dead: _Actor) -> _Actor:
        """A fresh actor for a dead one: on its node if that node can still hold it."""
        self.drop(dead)
        return self.start(dead.place, strict=False)

    def close(self) -> None:
        for actor in list(self.actors.values()):
            self.drop(actor)


def _take(pending: deque[_Job], actor: _Actor, alive: set[int]) -> _Job | None:
    """The first job this actor's node can read, not yet tried on this actor (or tried on
    every live one)."""
    for job in pending:
        if actor.place.node.node_id in job.blocked:
            continue
        if actor.id not in job.tried or alive <= job.tried:
            pending.remove(job)
            return job
    return None


def _dispatch(ray: Any, run: RayRun, pool: _Pool, free: list[_Actor], pending: deque[_Job],
              outcomes: dict[Path, FileOutcome], root: Path, say: Callable[[str], None],
              quiet: bool) -> None:
    total = len(pending)
    progress = _ClusterProgress(total, not quiet and sys.stderr.isatty())
    inflight: dict[Any, tuple[_Job, _Actor]] = {}
    began_run = time.time()
    try:
        while (pending or inflight) and run.summary.stopped is None:
            if interrupt_requested() is not None:
                run.summary.stopped = "interrupted"
                break
            for actor in list(free):
                job = _take(pending, actor, set(pool.actors))
                if job is not None:
                    free.remove(actor)
                    job.attempts += 1
                    job.tried.add(actor.id)
                    ref = actor.handle.process.remote(str(job.video.absolute()),
                                                     str(job.output.absolute()), job.force,
                                                     began_run)
                    inflight[ref] = (job, actor)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                job, actor = inflight.pop(ref)
                outcome, why = _result(ray, ref, actor)
                # A dead actor's place goes to a fresh one.
                free.append(actor if outcome is not None else pool.replace(actor))
                if why is not None and job.attempts <= RETRIES:
                    run.retried += 1
                    pending.appendleft(job)
                    progress.say(say, f"retrying {relative_name(job.video, root)} on another "
                                      f"worker: {why}")
                    continue
                if outcome is not None:
                    outcome.video = job.video  # the path as found, not the absolute one
                    if outcome.report is not None:  # where it ran, for the report
                        outcome.report["node"] = actor.place.node.node_id
                        outcome.report["node_address"] = actor.place.node.address
                else:
                    outcome = FileOutcome(job.video, FAILED, f"{why} (tried {job.attempts} "
                                          "times)", exit_code=1)
                if job.replaces and outcome.status == OK:
                    outcome.detail += f"; replaced a script made with {job.replaces}"
                outcomes[job.video] = outcome
                progress.add(outcome)
                progress.say(say, f"[{progress.done}/{total}] {outcome.status:7} "
                                  f"{relative_name(job.video, root)}: {outcome.detail}")
                if isinstance(outcome.error, FATAL_ERRORS):
                    run.summary.stopped = outcome.detail
    finally:
        progress.close()
    for job, _actor in inflight.values():  # stopped early: these were cut off mid-video
        outcomes[job.video] = FileOutcome(job.video, INTERRUPTED,
                                          "stopped mid-video (run again to resume)")


def _result(ray: Any, ref: Any, actor: _Actor) -> tuple[FileOutcome | None, str | None]:
    """(outcome, why it should run again): outcome None when the worker died. What went wrong
    on a node is one line naming the node."""
    where = actor.place.node.address
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayActorError as exc:
        return None, f"worker on {where} died ({root_cause(exc)})"
    except ray.exceptions.RayError as exc:
        return None, f"worker on {where} failed ({root_cause(exc)})"
    if outcome.status == FAILED:
        outcome.detail += f" (on {where})"
        if outcome.error is None:  # not an fsrun error: unexpected, worth another try
            return outcome, outcome.detail
    return outcome, None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def run_ray_folder(root: Path, spec: SessionSpec, template: VideoRequest, hooks: RunHooks,
                   extensions: Iterable[str], echo: Callable[[str], None],
                   log: Callable[[str], None] | None,
                   address: str | None = None, output_dir: Path | None = None,
                   actor_cpus: int | None = None,
                   startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> FolderSummary:
    """CLI entry: as folder.run_folder, on Ray."""
    run = process_ray_folder(root, spec, template, hooks, extensions, log, address, output_dir,
                             actor_cpus, startup_timeout_s=startup_timeout_s)
    return finish_folder(run.summary, hooks, echo)
