"""A model session: the package loaded and verified once, the backends started once, then any
number of videos, one after another.

    with ModelSession.open(SessionSpec(model=package_dir)) as session:
        for video in videos:
            session.process(VideoRequest(video=video))

A session opens from its spec alone (request.py): no video. Per video: every output path is
checked before any work, the frames not in the embedding cache are decoded and encoded
(encode.py), the head runs over the windows (head.py) and the funscript is written atomically.
Drivers run videos through runner.run_video, which claims the output first. A session is used
by one thread at a time.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fsrun.axes import AXES, SINGLE, STROKE
from fsrun.crop import parse_crop
from fsrun.files.embedding_cache import CacheError, CacheKey, EmbeddingCache, MemoryStore
from fsrun.run.encode import EncodeJob, Store, encode_frames
from fsrun.errors import InputError, OutputError, UsageError
from fsrun.files.funscript import build_funscript, check_writable, default_output, write_funscript
from fsrun.run.axis_outputs import chosen_axes, output_paths, single_file_axes
from fsrun.run.head import collect_embeddings, run_head
from fsrun.files.locking import LockUnavailable
from fsrun.files.outputs import Protected, check_report_path, write_report
from fsrun.model.package import ModelPackage, load_package
from fsrun.run.plan import RunPlan, make_plan, resolve_model, start_backends, start_graph
from fsrun.run.postprocess import offset_notice, to_actions
from fsrun.run.report import VideoJob, report_failure, run_report, script_metadata
from fsrun.run.request import RunHooks, RunResult, SessionSpec, VideoRequest
from fsrun.run.sampling import TimeRange, TimestampSampler, coverage
from fsrun.signals import raise_if_interrupted
from fsrun.sources import probe, resolve_crop
from fsrun.run.stitching import plan_windows

# Frame counts of the decoder that go into every script's metadata (and the run report).
FRAME_COUNTS: tuple[str, ...] = ("frames_damaged", "frames_missing", "frames_held")
# The graphs a session runs, in the order they start (the head is small: a backend that cannot
# start fails fast on it, before the encoder's longer start).
GRAPHS: tuple[str, ...] = ("head", "encoder")


class ModelSession:
    """One model on one backend, ready for many videos. Make it with ModelSession.open()."""

    def __init__(self, plan: RunPlan, package: ModelPackage, spec: SessionSpec,
                 hooks: RunHooks):
        self._plan = plan
        self.package = package  # the loaded, verified model package
        self.spec = spec  # what the session was opened with
        self.hooks = hooks  # its notices and progress, unless a video brings its own
        self._backends: dict[str, Any] = {}  # graph name -> started backend
        self._closed = False
        self._said = 0  # plan notices and fallbacks told so far (on the first video)
        self.startup_s = 0.0  # seconds spent loading the package and starting backends
        self._unbilled_s = 0.0  # start-up time not yet counted in a video's "load" stage

    @classmethod
    def open(cls, spec: SessionSpec, hooks: RunHooks | None = None,
             start: bool = True) -> ModelSession:
        """Plan the run, load and hash-verify the package, and (with start) start the encoder
        and head backends. start=False defers them to the first video that needs them, so
        output paths are checked before any backend starts and a video whose embeddings are
        all cached never starts the encoder."""
        began = time.perf_counter()
        hooks = hooks or RunHooks()
        resolved = resolve_model(spec.model, spec.model_fps, hooks.say(), spec.cache_dir)
        package = load_package(resolved[0])
        session = cls(make_plan(spec, package, resolved), package, spec, hooks)
        try:
            if start:
                session._start(GRAPHS)
        except BaseException:
            session.close()
            raise
        session.startup_s = session._unbilled_s = time.perf_counter() - began
        return session

    @property
    def plan(self) -> RunPlan:
        """The plan in force: after a fallback at start-up, the backend that did start."""
        return self._plan

    def __enter__(self) -> ModelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the backends; the session cannot process videos after this."""
        self._closed = True
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            backend.close()

    def process(self, request: VideoRequest, hooks: RunHooks | None = None) -> RunResult:
        """Run the model over request.video and write its funscript; raises fsrun.errors
        classes. With request.report, a failed run writes a report too: what failed, with
        which exit code. hooks: this video's (a studio job's progress); else the session's."""
        began = time.perf_counter()
        try:
            self._check_open()
            return self._process(request, hooks or self.hooks)
        except BaseException as exc:
            if request.report is not None:
                report_failure(request, exc, time.perf_counter() - began)
            raise

    def positions(self, request: VideoRequest, hooks: RunHooks | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(pts_ms, raw positions 0..1) of request.video at its stride, writing nothing: from
        the embedding cache where it holds the video (then only the head runs), else decoded
        and encoded into it. What the studio redraws when a stride changes."""
        self._check_open()
        hooks = hooks or self.hooks
        job = self._prepare(request, hooks, write=False)
        pts_ms, embeddings = self._embeddings(job)
        windows = plan_windows(len(pts_ms), self.package.meta.window, request.stride)
        told = hooks.watch.head_progress if hooks.watch is not None else None
        positions, _ = run_head(self._backends["head"], embeddings, windows,
                                self.spec.head_batch, job.stages, told, self.axis_count)
        return pts_ms, positions

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes the model gives, in its head's order (the stroke alone without meta axes)."""
        return self.package.meta.axis_names

    @property
    def axis_count(self) -> int:
        return len(self.axes)

    def output_paths(self, request: VideoRequest) -> dict[str, Path]:
        """axis -> the file the request writes it to (UsageError for an axis the model lacks)."""
        axes = chosen_axes(request.axes, self.axes, request.multi_axis_file)
        return output_paths(Path(request.video), request.output, axes, request.multi_axis_file)

    def check_outputs(self, request: VideoRequest) -> tuple[dict[str, Path], Protected]:
        """Every output path of the request, checked before any work (OutputError, exit 5):
        (axis -> its funscript's path, the files no output may replace)."""
        video = Path(request.video)
        outputs = self.output_paths(request)
        protect = Protected([video], "the input video", also=request.protected)
        for path in outputs.values():
            check_writable(path, request.force, protect)
        if request.report is not None:
            check_report_path(request.report, next(iter(outputs.values())), protect)
        return outputs, protect

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this model session is closed")

    def _start(self, graphs: tuple[str, ...]) -> None:
        """Start the graphs not running yet. The first start may fall back (--backend auto)
        and so settle the plan; later ones use the plan's backend."""
        missing = tuple(g for g in graphs if g not in self._backends)
        if not missing:
            return
        began = time.perf_counter()
        factory = self.hooks.backend_factory
        if not self._backends:
            started, self._plan = start_backends(self._plan, self.package, missing, factory)
            self._backends.update(started)
        else:
            for graph in missing:
                self._backends[graph] = start_graph(self._plan, self.package, graph, factory)
        self.startup_s += time.perf_counter() - began

    def _process(self, cfg: VideoRequest, hooks: RunHooks) -> RunResult:
        wall = time.perf_counter()
        # The session's start-up is counted in its first video's load stage and wall time.
        startup_share, self._unbilled_s = self._unbilled_s, 0.0
        job = self._prepare(cfg, hooks)
        job.stages.seconds["load"] += startup_share
        pts_ms, embeddings = self._embeddings(job)
        meta = self.package.meta
        windows = plan_windows(len(pts_ms), meta.window, cfg.stride)
        if windows.padded:
            job.say(f"clip is shorter than one window ({windows.frames} < {meta.window} "
                    "frames): padded with its last frame")
        positions, head_calls = run_head(self._backends["head"], embeddings, windows,
                                         self.spec.head_batch, job.stages, None, self.axis_count)
        counts, covered_ms, short = self._write(job, pts_ms, positions, windows.padded)
        actions = next(iter(counts.values()))
        report = run_report(
            job, self.package, self._plan, windows, head_calls, actions, covered_ms,
            short is not None, time.perf_counter() - wall + startup_share, self.startup_s)
        if cfg.report is not None:
            try:
                write_report(Path(cfg.report), report)
            except OutputError as exc:  # the script is in place: say so, exit 5 all the same
                raise OutputError(f"{exc}; {job.output} was written") from None
        columns = ({} if positions.ndim == 1 else
                   {axis: positions[:, c] for c, axis in enumerate(self.axes)})
        return RunResult(job.output, actions, report, pts_ms,
                         positions if positions.ndim == 1 else columns[STROKE], windows.padded,
                         columns, job.outputs, counts)

    def _prepare(self, cfg: VideoRequest, hooks: RunHooks, write: bool = True) -> VideoJob:
        """Every check that can refuse the video before any work (its outputs too, unless
        nothing will be written), then the head's backend."""
        began = time.perf_counter()
        video = Path(cfg.video)
        time_range = TimeRange(cfg.start, cfg.end)  # rejects --end before --start
        if write:
            outputs, protect = self.check_outputs(cfg)
        else:
            outputs = {STROKE: Path(cfg.output) if cfg.output else default_output(video)}
            protect = Protected([video], "the input video", also=cfg.protected)
        info = probe(video)
        if info.duration_s > 0:  # options that cannot give a script are refused now, not later
            if cfg.start >= info.duration_s:
                raise UsageError(f"--start {cfg.start:g} s is past the end of {video.name} "
                                 f"({info.duration_s:.1f} s)")
            end_s = info.duration_s if cfg.end is None else min(cfg.end, info.duration_s)
            offset_notice(cfg.postprocess.offset_ms, cfg.start * 1000.0, end_s * 1000.0,
                          video.name, info.duration_s * 1000.0)
        crop_box = resolve_crop(video, parse_crop(cfg.crop), info)
        plan_windows(1, self.package.meta.window, cfg.stride)  # a bad --stride, before any work
        self._start(("head",))
        job = VideoJob(cfg, hooks, video, outputs, protect, info, crop_box, time_range)
        told = [*self._plan.notices, *(f"backend fallback: {f}" for f in self._plan.fallbacks)]
        for notice in told[self._said:]:
            job.say(notice)
        self._said = len(told)
        job.stages.add("load", began)
        return job

    def _embeddings(self, job: VideoJob) -> tuple[np.ndarray, np.ndarray]:
        """(pts_ms, embeddings) of the video's sampled frames: from the cache, else decoded and
        encoded now (into the cache, batch by batch, under the entry's lock)."""
        cfg = job.cfg
        with self._open_store(job) as store:
            job.cache_hit = isinstance(store, EmbeddingCache) and store.covers(cfg.end)
            self._say_plan(job)
            if not job.cache_hit:
                store = self._encode(job, store)
            pts_ms, embeddings = collect_embeddings(store, cfg.end)
        if len(pts_ms) == 0:
            if cfg.start > 0:
                raise UsageError(f"--start {cfg.start:g} s is past the end of {job.video.name} "
                                 f"({job.info.duration_s:.1f} s)")
            raise InputError(f"{job.video}: no frames could be decoded")
        return pts_ms, embeddings

    @contextlib.contextmanager
    def _open_store(self, job: VideoJob) -> Iterator[Store]:
        """The video's cache entry, locked and verified; memory with --no-cache or when the
        cache cannot be used (a notice says why: the run never fails for the cache)."""
        cfg, meta = job.cfg, self.package.meta
        if not self.spec.use_cache:
            yield MemoryStore(meta.embedding_dim)
            return
        key = CacheKey.for_video(job.video, self.package.model_hash, self._plan.precision,
                                 job.crop_box, meta.fps, cfg.start, self._plan.resize)

        def waiting(seconds: float) -> None:
            job.say(f"another fsrun is writing the embedding cache for {job.video.name}; "
                    f"waiting for it ({seconds:.0f} s so far; --no-cache runs without it)")

        try:
            cache = EmbeddingCache.open(key, meta.embedding_dim, self.spec.cache_dir,
                                        on_wait=waiting, check=raise_if_interrupted)
        except (CacheError, LockUnavailable) as exc:
            job.say(f"cannot use the embedding cache ({exc}); going on without it")
            cache = None
        if cache is None:
            yield MemoryStore(meta.embedding_dim)
            return
        job.cache_entry = str(cache.folder)
        if cache.damaged:
            job.cache_damaged = cache.damaged
            job.say(f"cache for {job.video.name} was damaged ({cache.damaged}); encoding again")
        with cache:
            yield cache

    def _say_plan(self, job: VideoJob) -> None:
        job.decoder, notes = ("cache", []) if job.cache_hit else self._plan.decoder_for(job.video)
        for note in notes:
            job.say(f"decoder fallback: {note}")
        meta, plan = self.package.meta, self._plan
        job.say(f"model: {self.package.name} ({meta.variant}"
                f"{'' if meta.trained else ', untrained'}) | backend: {plan.backend} "
                f"({plan.precision}) | decoder: {job.decoder} | resize: {plan.resize}")

    def _encode(self, job: VideoJob, store: Store) -> Store:
        """Decode and encode what the store lacks; the store that then holds every frame."""
        cfg, plan, meta, hooks = job.cfg, self._plan, self.package.meta, job.hooks
        if store.frames:
            job.say(f"resuming after {store.frames} frames cached by an earlier run")
        began = time.perf_counter()
        self._start(("encoder",))
        job.stages.add("load", began)
        span = (cfg.end if cfg.end is not None else job.info.duration_s) - cfg.start
        encode = EncodeJob(video=job.video, decoder=job.decoder, crop_box=job.crop_box,
                           resize_to=meta.input_size if plan.resize == "source" else None,
                           start=cfg.start, end=cfg.end, batch=self.spec.batch,
                           queue_size=self.spec.queue_size, device_id=plan.device_id,
                           progress=False if hooks.quiet else hooks.progress,
                           total_hint=int(span * meta.fps) if span > 0 else None, say=job.say,
                           watch=hooks.watch)
        return encode_frames(encode, TimestampSampler(meta.fps, job.time_range), store,
                             self._backends["encoder"], job.stages, job.counts)

    def _write(self, job: VideoJob, pts_ms: np.ndarray, positions: np.ndarray,
               padded: bool) -> tuple[dict[str, int], list, str | None]:
        """Postprocess every chosen axis and write its funscript atomically (the stroke's last:
        the file a later run looks for); (points per axis, covered span, the notice when the
        frames cover less than the container claims)."""
        began = time.perf_counter()
        cfg, info, say, video = job.cfg, job.info, job.say, job.video
        shifted = offset_notice(cfg.postprocess.offset_ms, pts_ms[0], pts_ms[-1], video.name,
                                info.duration_s * 1000.0 if info.duration_s > 0 else None)
        if shifted:
            say(shifted)
        axes = chosen_axes(cfg.axes, self.axes, cfg.multi_axis_file)
        actions = {axis: to_actions(pts_ms, positions if positions.ndim == 1
                                    else positions[:, self.axes.index(axis)], cfg.postprocess)
                   for axis in axes}
        metadata = script_metadata(cfg, self.package, info.duration_s, self._plan.precision,
                                   padded, job.crop_box, self._plan.resize, info.clock_offset_s)
        counts = {name: job.counts[name] for name in FRAME_COUNTS}
        metadata.update(counts)
        if counts["frames_damaged"]:
            n = counts["frames_damaged"]
            say(f"{video.name}: {n} damaged frame{'' if n == 1 else 's'} skipped; the script "
                "covers the frames that decoded")
        meta = self.package.meta
        slack_s = 1.0 / meta.fps + (2.0 / info.fps if info.fps > 0 else 1.0 / meta.fps)
        covered_ms, short = coverage(pts_ms, info.duration_s, cfg.start, cfg.end, slack_s,
                                     meta.window / meta.fps, video.name)
        metadata["covered_ms"] = covered_ms
        if short:
            say(short)
            metadata["notes"] += "; " + short.split(": ", 1)[1]
        raise_if_interrupted("nothing written")
        documents = {}
        for axis, path in job.outputs.items():
            doc = build_funscript(actions[axis], {**metadata, **(
                {} if self.axes == SINGLE else {"axis": axis, "tcode": AXES[axis].tcode})})
            if cfg.multi_axis_file:
                doc["axes"] = single_file_axes(actions)
            documents[axis] = (path, doc)
        for axis in sorted(documents, key=lambda a: a == STROKE):  # the stroke's file last
            path, doc = documents[axis]
            write_funscript(path, doc, force=cfg.force, protect=job.protect)
        job.stages.add("write", began)
        return {axis: len(actions[axis]) for axis in job.outputs}, covered_ms, short
