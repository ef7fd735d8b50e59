"""Per-frame embeddings on disk, so a re-run skips decoding and the network, and a stopped run
resumes where it was.

One folder per key (video content, model hash, precision, crop box, resize mode, model fps,
start time) under the user cache folder. Embeddings and timestamps are appended batch by batch
to two raw files, and every batch gets a record in `blocks.crc` (its frame count and the CRC-32
of its bytes in each file), written after the batch itself. `state.json` (written atomically)
says whether the whole range was encoded and how many frames that is.

One writer per entry: an entry is used only under its lock (`locks/DIGEST.lock` in the cache
folder, locking.py), so a second process on the same video waits until the first has finished, then
finds the entry complete. Every entry is verified when it is opened: each recorded batch against
its CRC, the frame count against the state's, timestamps finite and increasing, embeddings
finite. Bytes past the last record (a batch cut off by a kill) are dropped and the run resumes
there; anything else that does not check out discards the entry (`damaged` says why) and the
video is encoded again. Locks are local: a cache folder shared by several machines (NFS) is not
supported.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fsrun.files.atomic import os_reason, write_atomic
from fsrun.config import cache_dir
from fsrun.crop import Crop
from fsrun.errors import OutputError
from fsrun.files.fingerprint import video_fingerprint
from fsrun.files.locking import FileLock

# 3: keyed by content (fingerprint.py); timestamps on the video's presented clock.
CACHE_FORMAT = 3
_EMBEDDINGS = "embeddings.f32"
_TIMESTAMPS = "pts_ms.f64"
_BLOCKS = "blocks.crc"
_STATE = "state.json"
_DATA_FILES = (_EMBEDDINGS, _TIMESTAMPS, _BLOCKS)
# One record per appended batch: frames, CRC-32 of its embeddings' bytes, of its timestamps'.
_BLOCK = struct.Struct("<III")


class CacheError(Exception):
    """The cache cannot be used (a full disk, no permission, no locking): the run goes on
    without it. The message is the reason, for a one-line notice."""


@dataclass(frozen=True)
class CacheKey:
    video: str  # absolute path of the video
    video_content: str  # fingerprint.video_fingerprint: size and hashes of three blocks, so a
    # file replaced by another video (even of the same size and mtime) is a different video
    model_hash: str  # ModelPackage.model_hash
    precision: str  # graph precision (fp16 embeddings differ slightly from fp32)
    crop: str  # resolved crop box, or "full"
    fps: float  # model frame rate the video was sampled at
    start_s: float  # --start changes which frames are sampled (the first target)
    resize: str = "graph"  # where frames were resized (source or graph): different pixels

    @classmethod
    def for_video(cls, video: Path, model_hash: str, precision: str, crop: Crop | None,
                  fps: float, start_s: float, resize: str = "graph") -> CacheKey:
        box = "full" if crop is None else f"{crop.x},{crop.y},{crop.width},{crop.height}"
        return cls(str(Path(video).resolve()), video_fingerprint(video), model_hash,
                   precision, box, float(fps), float(start_s), resize)

    def digest(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_folder(key: CacheKey, root: Path | None = None) -> Path:
    """Where the entry for key lives (it may not exist)."""
    return Path(root or cache_dir()) / "embeddings" / key.digest()


def describe_entry(folder: Path) -> str:
    """What an entry holds, read without its lock (for --explain): not verified here."""
    try:
        state = json.loads((folder / _STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "empty" if not folder.exists() else "unreadable; the next run checks it"
    if not isinstance(state, dict):
        return "unreadable; the next run checks it"
    if state.get("complete"):
        until = state.get("complete_until")
        return f"complete, {state.get('frames')} frames" + (f" up to {until} s" if until else "")
    rows = _size(folder / _BLOCKS) // _BLOCK.size
    return f"partial, {rows} batches; a run resumes it"


class MemoryStore:
    """A run's embeddings in memory: --no-cache, or a cache that could not be written."""

    folder = None  # no entry on disk

    def __init__(self, dim: int, chunks: list[tuple[np.ndarray, np.ndarray]] | None = None):
        self.dim = dim
        self._chunks = list(chunks or [])  # (pts_ms [n], embeddings [n, dim]) per batch
        self.frames = sum(len(c[0]) for c in self._chunks)

    def append(self, embeddings: np.ndarray, pts_ms: np.ndarray) -> None:
        self._chunks.append((np.asarray(pts_ms, dtype=np.float64),
                             np.asarray(embeddings, dtype=np.float32)))
        self.frames += len(pts_ms)

    def mark_complete(self, until_s: float | None) -> None:
        """Nothing to record: memory does not outlive the run."""

    def covers(self, end_s: float | None) -> bool:
        return False

    def timestamps(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate([c[0] for c in self._chunks])

    def embeddings(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([c[1] for c in self._chunks])


class EmbeddingCache:
    """One verified entry of the on-disk store, held under its lock. Open it with
    `with EmbeddingCache.open(key, dim, root) as cache:`."""

    def __init__(self, key: CacheKey, dim: int, root: Path | None = None):
        self.key = key
        self.dim = dim
        self.folder = entry_folder(key, root)
        self.lock_path = self.folder.parent.parent / "locks" / f"{self.folder.name}.lock"
        self.complete = False  # True once a run reached the end of its range
        self.complete_until: float | None = None  # that range's --end; None = end of video
        self.frames = 0  # usable cached frames
        self.damaged: str | None = None  # why the entry found on disk was discarded
        self._lock: FileLock | None = None
        # The data files, held open: reads go through these handles, so what this run cached
        # stays readable when the folder is removed under it (it then goes on in memory).
        self._files: dict[str, Any] = {}
        self._folder_id: tuple[int, int] | None = None  # the entry folder's device and inode

    @classmethod
    def open(cls, key: CacheKey, dim: int, root: Path | None = None,
             on_wait: Callable[[float], None] | None = None,
             check: Callable[[], None] | None = None) -> EmbeddingCache:
        """Lock the entry (waiting while another process writes it: on_wait is told) and load
        it, verified. CacheError when the cache folder cannot be used at all."""
        cache = cls(key, dim, root)
        try:
            cache.folder.parent.mkdir(parents=True, exist_ok=True)
            cache.lock_path.parent.mkdir(exist_ok=True)
            lock = FileLock(cache.lock_path, on_wait=on_wait, check=check)
            lock.acquire()
        except OSError as exc:
            raise CacheError(f"{cache.folder.parent}: {os_reason(exc)}") from None
        cache._lock = lock
        try:
            cache._load()
        except OSError as exc:
            cache.close()
            raise CacheError(f"{cache.folder}: {os_reason(exc)}") from None
        return cache

    def close(self) -> None:
        """Let other processes have the entry."""
        self._close_files()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        state = self._read_state()
        if state is None:
            return
        if state.get("format") != CACHE_FORMAT or state.get("dim") != self.dim \
                or state.get("key") != self.key.__dict__:
            self.clear()  # another fsrun version or model: not damage, only not ours
            return
        problem = self._verify(state)
        if problem is not None:
            self.damaged = problem
            self.clear()
            return
        self.complete = bool(state.get("complete"))
        self.complete_until = state.get("complete_until")

    def _read_state(self) -> dict | None:
        """The entry's state; None when there is no entry (or a damaged one, now cleared)."""
        path = self.folder / _STATE
        if not path.is_file():
            if any((self.folder / name).exists() for name in _DATA_FILES):
                self.damaged = "its state file is missing"
                self.clear()
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            state = None
        if not isinstance(state, dict):
            self.damaged = "its state file is not valid JSON"
            self.clear()
            return None
        return state

    def _verify(self, state: dict) -> str | None:
        """Check every recorded batch; drop an unrecorded tail. None when the entry is good,
        else what is wrong with it."""
        blocks = _read_blocks(self.folder / _BLOCKS)
        if blocks is None:
            return "its batch records are unreadable"
        emb_row, pts_row = 4 * self.dim, 8
        sizes = [_size(self.folder / name) for name in (_EMBEDDINGS, _TIMESTAMPS)]
        recorded = sum(block[0] for block in blocks)
        if recorded * emb_row > sizes[0] or recorded * pts_row > sizes[1]:
            held = min(sizes[0] // emb_row, sizes[1] // pts_row)
            return f"its batch records count {recorded} frames, its data files hold {held}"
        frames = 0
        if blocks:
            with open(self.folder / _EMBEDDINGS, "rb") as emb_file, \
                    open(self.folder / _TIMESTAMPS, "rb") as pts_file:
                for count, emb_crc, pts_crc in blocks:
                    if count == 0:
                        return f"an empty batch record after frame {frames}"
                    end = frames + count
                    if zlib.crc32(emb_file.read(count * emb_row)) != emb_crc:
                        return f"embeddings changed in frames {frames}-{end - 1}"
                    if zlib.crc32(pts_file.read(count * pts_row)) != pts_crc:
                        return f"timestamps changed in frames {frames}-{end - 1}"
                    frames = end
        if state.get("complete") and state.get("frames") != frames:
            return f"{frames} frames where its state says {state.get('frames')}"
        # Bytes after the last record: a batch cut off mid-write. Drop them; resume there.
        _truncate(self.folder / _EMBEDDINGS, frames * emb_row)
        _truncate(self.folder / _TIMESTAMPS, frames * pts_row)
        _truncate(self.folder / _BLOCKS, len(blocks) * _BLOCK.size)
        self.frames = frames
        self._open_files()
        pts = self.timestamps()
        if not np.all(np.isfinite(pts)) or np.any(np.diff(pts) <= 0):
            return "its timestamps are not finite and increasing"
        if frames and not np.all(np.isfinite(self.embeddings())):
            return "its embeddings are not finite"
        return None

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
        f = self._files[_TIMESTAMPS]
        f.seek(0)
        return np.fromfile(f, dtype=np.float64, count=self.frames)

    def embeddings(self) -> np.ndarray:
        """[N, D] float32, memory-mapped: a long video's embeddings stay on disk."""
        if self.frames == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(self._files[_EMBEDDINGS], dtype=np.float32, mode="r",
                         shape=(self.frames, self.dim))

    def to_memory(self) -> MemoryStore:
        """The frames cached so far, in memory (the run goes on without the cache)."""
        return MemoryStore(self.dim, [(self.timestamps(), np.array(self.embeddings()))]
                           if self.frames else [])

    # -- writing (CacheError on failure) ------------------------------------------------------

    def append(self, embeddings: np.ndarray, pts_ms: np.ndarray) -> None:
        """Add a batch; it is on disk (flushed) when this returns."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        pts_ms = np.ascontiguousarray(pts_ms, dtype=np.float64)
        if embeddings.shape != (len(pts_ms), self.dim):
            raise ValueError(f"embeddings {embeddings.shape} do not match {len(pts_ms)} x {self.dim}")
        emb_bytes, pts_bytes = embeddings.tobytes(), pts_ms.tobytes()
        record = _BLOCK.pack(len(pts_ms), zlib.crc32(emb_bytes), zlib.crc32(pts_bytes))
        try:
            if not self._files:  # a new entry
                self.folder.mkdir(parents=True, exist_ok=True)
                self._folder_id = _identity(self.folder)
                self._write_state()
                self._open_files()
            self._check_ours()
            # The record goes last: data without a record is a cut-off tail, dropped on load.
            for name, data in ((_EMBEDDINGS, emb_bytes), (_TIMESTAMPS, pts_bytes),
                               (_BLOCKS, record)):
                f = self._files[name]
                f.write(data)
                f.flush()
            self.frames += len(pts_ms)
            if self.complete:  # extending a range that was complete up to an earlier --end
                self.complete = False
                self._write_state()
        except OSError as exc:
            raise CacheError(f"{self.folder}: {os_reason(exc)}") from None

    def mark_complete(self, until_s: float | None) -> None:
        """Every sampled frame before until_s (None: the whole video) is cached."""
        if not self._files:
            return  # nothing was ever written here: no entry to complete
        if self.complete and (self.complete_until is None
                              or (until_s is not None and until_s <= self.complete_until)):
            return
        self.complete = True
        self.complete_until = until_s
        self._write_state()

    def _check_ours(self) -> None:
        """CacheError when the entry is no longer this run's to write: its folder or its lock
        file was removed or replaced (someone cleared the cache), so another run may hold a
        new lock on the same entry. This run goes on in memory; the other one writes."""
        if self._lock is not None and not self._lock.still_held():
            raise CacheError(f"{self.folder}: its lock file was removed or replaced")
        if self._folder_id is not None and _identity(self.folder) != self._folder_id:
            raise CacheError(f"{self.folder}: the folder was removed or replaced")

    def _open_files(self) -> None:
        if not self._files:
            self._files = {name: open(self.folder / name, "a+b") for name in _DATA_FILES}
            self._folder_id = _identity(self.folder)

    def _close_files(self) -> None:
        """Close every data file. A batch whose flush failed (a full disk) is still buffered and
        fails again here: the cache's loss, never the run's (the run went on in memory), and
        safe, since data without its block record is a cut-off tail, dropped on load."""
        files, self._files = self._files, {}
        for f in files.values():
            try:
                f.close()
            except OSError:
                pass

    def _write_state(self) -> None:
        self._check_ours()
        state = {"format": CACHE_FORMAT, "dim": self.dim, "key": self.key.__dict__,
                 "complete": self.complete, "complete_until": self.complete_until,
                 "frames": self.frames}
        try:
            write_atomic(self.folder / _STATE, json.dumps(state, indent=1), fsync=False,
                         what="write the cache state")
        except OutputError as exc:
            raise CacheError(str(exc)) from None

    def clear(self) -> None:
        self._close_files()
        self._folder_id = None
        shutil.rmtree(self.folder, ignore_errors=True)
        self.frames = 0
        self.complete = False
        self.complete_until = None


def _read_blocks(path: Path) -> list[tuple[int, int, int]] | None:
    """The batch records; a record cut off at the end is left out. None when unreadable."""
    try:
        data = path.read_bytes() if path.exists() else b""
    except OSError:
        return None
    whole = len(data) - len(data) % _BLOCK.size
    return [_BLOCK.unpack_from(data, offset) for offset in range(0, whole, _BLOCK.size)]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _truncate(path: Path, size: int) -> None:
    if path.is_file() and path.stat().st_size > size:
        with open(path, "r+b") as f:
            f.truncate(size)
