"""Per-frame embeddings on disk, so a re-run skips decoding and the network, and a stopped run
resumes where it was.

One folder per key (video identity, model hash, crop box, resize mode, model fps, start time) under the user
cache dir. Embeddings and timestamps are appended batch by batch to two raw files; the number
of usable frames is what both files hold completely, so a run killed mid-write loses at most
its last batch. `state.json` (written atomically) says whether the whole range was encoded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsrun.config import cache_dir
from fsrun.crop import Crop

CACHE_FORMAT = 1
_EMBEDDINGS = "embeddings.f32"
_TIMESTAMPS = "pts_ms.f64"
_STATE = "state.json"


@dataclass(frozen=True)
class CacheKey:
    video: str  # absolute path of the video
    video_size: int  # bytes: a changed file is a different video
    video_mtime_ns: int  # modification time, same reason
    model_hash: str  # ModelPackage.model_hash
    precision: str  # graph precision (fp16 embeddings differ slightly from fp32)
    crop: str  # resolved crop box, or "full"
    fps: float  # model frame rate the video was sampled at
    start_s: float  # --start changes which frames are sampled (the first target)
    resize: str = "graph"  # where frames were resized (source or graph): different pixels

    @classmethod
    def for_video(cls, video: Path, model_hash: str, precision: str, crop: Crop | None,
                  fps: float, start_s: float, resize: str = "graph") -> CacheKey:
        stat = Path(video).stat()
        box = "full" if crop is None else f"{crop.x},{crop.y},{crop.width},{crop.height}"
        return cls(str(Path(video).resolve()), stat.st_size, stat.st_mtime_ns, model_hash,
                   precision, box, float(fps), float(start_s), resize)

    def digest(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class EmbeddingCache:
    """Append-only store of [N, D] float32 embeddings and [N] float64 timestamps."""

    def __init__(self, key: CacheKey, dim: int, root: Path | None = None):
        self.key = key
        self.dim = dim
        self.folder = Path(root or cache_dir()) / "embeddings" / key.digest()
        self.complete = False  # True once a run reached the end of its range
        self.complete_until: float | None = None  # that range's --end; None = end of video
        self.frames = 0  # usable cached frames
        self._load()

    def _load(self) -> None:
        state_path = self.folder / _STATE
        if not state_path.is_file():
            return
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        if state.get("format") != CACHE_FORMAT or state.get("dim") != self.dim \
                or state.get("key") != self.key.__dict__:
            self.clear()
            return
        emb_bytes = _size(self.folder / _EMBEDDINGS)
        pts_bytes = _size(self.folder / _TIMESTAMPS)
        self.frames = min(emb_bytes // (4 * self.dim), pts_bytes // 8)
        # Drop a torn tail so later appends line up.
        _truncate(self.folder / _EMBEDDINGS, self.frames * 4 * self.dim)
        _truncate(self.folder / _TIMESTAMPS, self.frames * 8)
        self.complete = bool(state.get("complete")) and self.frames == state.get("frames")
        self.complete_until = state.get("complete_until")

    def _write_state(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {"format": CACHE_FORMAT, "dim": self.dim, "key": self.key.__dict__,
                 "complete": self.complete, "complete_until": self.complete_until,
                 "frames": self.frames}
        tmp = self.folder / (_STATE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(tmp, self.folder / _STATE)

    def append(self, embeddings: np.ndarray, pts_ms: np.ndarray) -> None:
        """Add a batch; it is on disk (flushed) when this returns."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        pts_ms = np.ascontiguousarray(pts_ms, dtype=np.float64)
        if embeddings.shape != (len(pts_ms), self.dim):
            raise ValueError(f"embeddings {embeddings.shape} do not match {len(pts_ms)} x {self.dim}")
        if self.frames == 0:
            self._write_state()
        for name, array in ((_EMBEDDINGS, embeddings), (_TIMESTAMPS, pts_ms)):
            with open(self.folder / name, "ab") as f:
                f.write(array.tobytes())
                f.flush()
        self.frames += len(pts_ms)
        if self.complete:  # extending a range that was complete up to an earlier --end
            self.complete = False
            self._write_state()

    def mark_complete(self, until_s: float | None) -> None:
        """Every sampled frame before until_s (None: the whole video) is cached."""
        if self.complete and (self.complete_until is None
                              or (until_s is not None and until_s <= self.complete_until)):
            return
        self.complete = True
        self.complete_until = until_s
        self._write_state()

    def covers(self, end_s: float | None) -> bool:
        """True when the cache holds every sampled frame up to end_s (None: to the end)."""
        if not self.complete:
            return False
        if self.complete_until is None:
            return True
        return end_s is not None and end_s <= self.complete_until

    def timestamps(self) -> np.ndarray:
        if self.frames == 0:
            return np.zeros(0, dtype=np.float64)
        return np.fromfile(self.folder / _TIMESTAMPS, dtype=np.float64, count=self.frames)

    def embeddings(self) -> np.ndarray:
        """[N, D] float32, memory-mapped: a long video's embeddings stay on disk."""
        if self.frames == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(self.folder / _EMBEDDINGS, dtype=np.float32, mode="r",
                         shape=(self.frames, self.dim))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.frames = 0
        self.complete = False
        self.complete_until = None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _truncate(path: Path, size: int) -> None:
    if path.is_file() and path.stat().st_size > size:
        with open(path, "r+b") as f:
            f.truncate(size)
