"""The on-disk embedding store: keys, locks, torn writes, verification, completion ranges."""
from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from fsrun.crop import Crop
from fsrun.files.embedding_cache import CacheError, CacheKey, EmbeddingCache, describe_entry


def key_for(video: Path, **changes: object) -> CacheKey:
    base = dict(model_hash="m" * 64, precision="fp32", crop=None, fps=30.0, start_s=0.0)
    base.update(changes)
    return CacheKey.for_video(video, **base)


def batch(n: int, first: int = 0, dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    emb = np.arange(first * dim, (first + n) * dim, dtype=np.float32).reshape(n, dim)
    return emb, np.arange(first, first + n, dtype=np.float64) * 33.3


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"x" * 10)
    return path


def opened(video: Path, root: Path, dim: int = 4) -> EmbeddingCache:
    return EmbeddingCache.open(key_for(video), dim, root)


def filled(video: Path, root: Path, frames: int = 5, complete: bool = True) -> Path:
    """An entry with `frames` frames in batches of 2 (and 1), complete unless told otherwise."""
    with opened(video, root) as cache:
        for first in range(0, frames, 2):
            cache.append(*batch(min(2, frames - first), first))
        if complete:
            cache.mark_complete(None)
        return cache.folder


def test_append_and_reload(video: Path, tmp_path: Path) -> None:
    with opened(video, tmp_path / "c") as cache:
        cache.append(*batch(3))
        cache.append(*batch(2, 3))
    with opened(video, tmp_path / "c") as again:
        assert again.frames == 5 and not again.complete and again.damaged is None
        assert np.array_equal(again.embeddings(), batch(5)[0])
        assert np.array_equal(again.timestamps(), batch(5)[1])


def test_key_covers_what_changes_the_embeddings(video: Path) -> None:
    base = key_for(video).digest()
    for change in ({"model_hash": "n" * 64}, {"precision": "fp16"}, {"fps": 25.0},
                   {"crop": Crop(0, 0, 5, 5)}, {"start_s": 1.0}):
        assert key_for(video, **change).digest() != base
    video.write_bytes(b"y" * 11)  # edited video
    assert key_for(video).digest() != base


def test_torn_tail_is_dropped_and_the_run_resumes_there(video: Path, tmp_path: Path) -> None:
    folder = filled(video, tmp_path, frames=4, complete=False)
    with open(folder / "embeddings.f32", "ab") as f:
        f.write(b"\x00" * 10)  # a batch cut off mid-write: no timestamps, no record
    with opened(video, tmp_path) as again:
        assert again.frames == 4 and again.damaged is None
        again.append(*batch(1, 4))
    with opened(video, tmp_path) as last:
        assert np.array_equal(last.embeddings(), batch(5)[0])


def test_completion_range(video: Path, tmp_path: Path) -> None:
    with opened(video, tmp_path) as cache:
        cache.append(*batch(2))
        cache.mark_complete(2.0)
    with opened(video, tmp_path) as again:
        assert again.covers(1.5) and again.covers(2.0)
        assert not again.covers(3.0) and not again.covers(None)
        again.append(*batch(2, 2))  # a later run extends it
        assert not again.covers(2.0)
        again.mark_complete(None)
    with opened(video, tmp_path) as last:
        assert last.covers(None)


def test_mismatched_dimension_starts_over(video: Path, tmp_path: Path) -> None:
    filled(video, tmp_path, frames=3)
    with opened(video, tmp_path, dim=8) as other:
        assert other.frames == 0 and other.damaged is None


def _overwrite_middle(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2 - len(data) // 2)
        f.write(data)


# Damage to one file of a complete 5-frame entry -> a word the reason must contain.
DAMAGE = {
    "embeddings.f32 random": (lambda f: _overwrite_middle(f / "embeddings.f32", bytes(range(7, 31))),
                              "embeddings changed"),
    "embeddings.f32 zeroed": (lambda f: _overwrite_middle(f / "embeddings.f32", b"\0" * 24),
                              "embeddings changed"),
    "embeddings.f32 truncated": (lambda f: _truncate(f / "embeddings.f32", 30), "data files hold"),
    "pts_ms.f64 random": (lambda f: _overwrite_middle(f / "pts_ms.f64", b"\x7f\xf0" * 4),
                          "timestamps changed"),
    "pts_ms.f64 deleted": (lambda f: (f / "pts_ms.f64").unlink(), "data files hold 0"),
    "blocks.crc deleted": (lambda f: (f / "blocks.crc").unlink(), "0 frames where"),
    "blocks.crc random": (lambda f: _overwrite_middle(f / "blocks.crc", b"\x01\x02\x03\x04"),
                          ""),
    "state.json deleted": (lambda f: (f / "state.json").unlink(), "state file is missing"),
    "state.json random": (lambda f: (f / "state.json").write_bytes(b"\x93\x11{"), "not valid JSON"),
}


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_is_found_and_the_entry_discarded(case: str, video: Path, tmp_path: Path) -> None:
    damage, reason = DAMAGE[case]
    damage(filled(video, tmp_path))
    with opened(video, tmp_path) as again:
        assert again.damaged is not None and reason in again.damaged, again.damaged
        assert again.frames == 0 and not again.complete
        assert not again.folder.exists()  # data without a valid state: cleared


def test_non_finite_values_are_damage(video: Path, tmp_path: Path) -> None:
    with opened(video, tmp_path) as cache:
        emb, pts = batch(3)
        emb[1, 2] = np.nan
        cache.append(emb, pts)
        cache.mark_complete(None)
    with opened(video, tmp_path) as again:
        assert again.damaged == "its embeddings are not finite"


def test_state_of_another_format_is_cleared_without_a_notice(video: Path, tmp_path: Path) -> None:
    folder = filled(video, tmp_path)
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, "format": 1}))
    with opened(video, tmp_path) as again:
        assert again.frames == 0 and again.damaged is None


def _hold(video: str, root: str, held: multiprocessing.Event, release: multiprocessing.Event) -> None:
    with EmbeddingCache.open(key_for(Path(video)), 4, Path(root)) as cache:
        cache.append(*batch(2))
        held.set()
        release.wait(30)
        cache.append(*batch(2, 2))
        cache.mark_complete(None)


def test_a_second_process_waits_for_the_writer_then_finds_the_entry_complete(
        video: Path, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    writer = context.Process(target=_hold, args=(str(video), str(tmp_path), held, release))
    writer.start()
    try:
        assert held.wait(60)
        waited: list[float] = []

        def on_wait(seconds: float) -> None:
            waited.append(seconds)
            release.set()  # the first notice means this process is waiting: let the writer go

        began = time.monotonic()
        with EmbeddingCache.open(key_for(video), 4, tmp_path, on_wait=on_wait) as cache:
            assert waited == [pytest.approx(0.0, abs=0.5)]
            assert cache.complete and cache.frames == 4
        assert time.monotonic() - began < 30
    finally:
        release.set()
        writer.join(30)


def test_describe_entry(video: Path, tmp_path: Path) -> None:
    folder = filled(video, tmp_path, frames=5, complete=False)
    assert describe_entry(folder) == "partial, 3 batches; a run resumes it"
    with opened(video, tmp_path) as cache:
        cache.mark_complete(None)
    assert describe_entry(folder) == "complete, 5 frames"
    assert describe_entry(tmp_path / "none") == "empty"


def test_a_cache_folder_that_cannot_be_made_is_a_cache_error(video: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="file"):
        EmbeddingCache.open(key_for(video), 4, blocker / "cache")


def test_a_lock_on_a_filesystem_that_cannot_tell_identity_is_still_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network mounts never agree between stat and fstat: the lock is taken after a few
    tries instead of looping for ever; where they agree, a replaced lock file is caught."""
    from fsrun.files import locking

    tries = []
    monkeypatch.setattr(locking, "_names", lambda path, fd: tries.append(1) and False)
    lock = locking.FileLock(tmp_path / "x.lock")
    lock.acquire()
    lock.release()
    assert len(tries) == locking.IDENTITY_TRIES + 1
