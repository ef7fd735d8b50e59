"""The encode loop: decode in a thread, encode each sampled frame once, cache batch by batch.

Decoding runs in a thread feeding a bounded queue, so decode overlaps inference and memory stays
flat; embeddings go to the on-disk cache batch by batch, so an interrupted run resumes.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from fsrun.files.embedding_cache import CacheError, EmbeddingCache, MemoryStore
from fsrun.errors import Interrupted, ModelError
from fsrun.progress import Progress
from fsrun.run.sampling import TimestampSampler
from fsrun.signals import raise_if_interrupted
from fsrun.sources import load_source_class

STAGES: tuple[str, ...] = ("load", "decode", "encode", "head", "stitch", "write")

# Where a run's embeddings go: the on-disk cache entry, or memory.
Store = Union[EmbeddingCache, MemoryStore]


class Stages:
    """Wall time per stage, in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {k: 0.0 for k in STAGES}

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


@dataclass
class EncodeJob:
    """One video's frames to encode."""

    video: Path  # the video file
    decoder: str  # pyav or nvdec
    crop_box: Any  # sources.Crop or None for the full frame
    resize_to: int | None  # square side to resize to in the decoder; None = in the graph
    start: float  # seconds: first time to process
    end: float | None  # seconds: stop before this time
    batch: int  # frames per encoder call
    queue_size: int  # decoded batches waiting for the encoder
    device_id: int  # CUDA device for GPU decoders
    progress: bool | None  # progress bar; None = when stderr is a terminal, False = never
    total_hint: int | None  # frames expected, for the progress bar
    say: Callable[[str], None] = lambda message: None  # one-line notices
    watch: Any = None  # request.RunWatch: progress and cancel from another thread


class DecodeThread:
    """Runs source.batches() in a thread; batches (or the error) come out of a bounded queue."""

    _END = object()

    def __init__(self, source: Any, sampler: TimestampSampler, batch: int, depth: int):
        self.source, self.sampler, self.batch = source, sampler, batch
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.seconds = 0.0  # time spent decoding, not waiting for the consumer
        self.finished = False  # the source ran out of frames (or reached --end)
        self.thread = threading.Thread(target=self._run, name="fsrun-decode", daemon=True)

    def _run(self) -> None:
        try:
            batches = self.source.batches(self.sampler, self.batch)
            while not self.stop.is_set():
                began = time.perf_counter()
                item = next(batches, self._END)
                self.seconds += time.perf_counter() - began
                if item is self._END:
                    self.finished = True
                self._put(item)
                if item is self._END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        self.thread.start()
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def encode_frames(job: EncodeJob, sampler: TimestampSampler, store: Store, encoder: Any,
                  stages: Stages, counts: dict[str, int]) -> Store:
    """Decode and encode the frames the store does not hold yet, appending them to it. Returns
    the store that holds them all: the cache, or memory when the cache failed on the way."""
    scaling = {"resize_to": job.resize_to} if job.resize_to else {}
    source = load_source_class(job.decoder)(job.video, crop=job.crop_box,
                                            device_id=job.device_id, **scaling)
    if store.frames:
        stamps = store.timestamps()
        sampler.resume_after(stamps[0] / 1000.0, stamps[-1] / 1000.0, store.frames)
        source.seek_to = stamps[-1] / 1000.0
        counts["resumed_from"] = store.frames
    elif job.start > 0:
        source.seek_to = job.start
    decode = DecodeThread(source, sampler, job.batch, job.queue_size)
    progress = Progress(job.total_hint, "frames", enabled=job.progress, done_before=store.frames)
    try:
        for batch in decode:
            began = time.perf_counter()
            embeddings = np.asarray(encoder.run(batch.frames), dtype=np.float32)
            stages.add("encode", began)
            if embeddings.shape[0] != len(batch):
                raise ModelError(f"encoder returned {embeddings.shape[0]} embeddings "
                                 f"for {len(batch)} frames")
            counts["encoder_calls"] += 1
            counts["frames_encoded"] += len(batch)
            store = _append(store, embeddings, batch.pts_ms, job.say)
            progress.update(len(batch))
            # Safe point: this batch is in the store, so a stop here loses nothing cached.
            raise_if_interrupted(_stopped_note(store))
            _watched(job, store)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped; {_stopped_note(store)}") from None
    finally:
        decode.close()
        progress.close()
        counts["frames_decoded"] += int(getattr(source, "frames_decoded", 0))
        for name in ("frames_damaged", "frames_missing", "frames_held"):
            counts[name] += int(getattr(source, name, 0))
        source.close()
    stages.seconds["decode"] += decode.seconds
    if decode.finished:
        try:
            store.mark_complete(job.end)
        except CacheError as exc:
            job.say(f"could not finish the embedding cache entry ({exc}); the next run "
                    "resumes it")
    return store


def _append(store: Store, embeddings: np.ndarray, pts_ms: np.ndarray,
            say: Callable[[str], None]) -> Store:
    """store.append; a cache that fails (a full disk) gives way to memory, with a notice."""
    try:
        store.append(embeddings, pts_ms)
        return store
    except CacheError as exc:
        memory = store.to_memory()
        say(f"cannot write the embedding cache ({exc}); going on without it")
        memory.append(embeddings, pts_ms)
        return memory


def _watched(job: EncodeJob, store: Store) -> None:
    """Tell the watcher how far the run is; stop when it asks (Interrupted: nothing written)."""
    watch = job.watch
    if watch is None:
        return
    if watch.progress is not None:
        watch.progress(store.frames, job.total_hint)
    if watch.cancelled is not None and watch.cancelled():
        raise Interrupted(f"cancelled; {_stopped_note(store)}")


def _stopped_note(store: Store) -> str:
    if isinstance(store, EmbeddingCache):
        return f"{store.frames} frames cached, run again to resume"
    return "nothing cached (run without the cache)"
