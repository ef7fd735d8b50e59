"""The on-disk embedding store: keys, torn writes, completion ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fsrun.embedding_cache import CacheKey, EmbeddingCache
from fsrun.crop import Crop


def key_for(video: Path, **changes: object) -> CacheKey:
    base = dict(model_hash="m" * 64, precision="fp32", crop=None, fps=30.0, start_s=0.0)
    base.update(changes)
    return CacheKey.for_video(video, **base)


def batch(n: int, first: int = 0, dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    emb = np.arange(first * dim, (first + n) * dim, dtype=np.float32).reshape(n, dim)
    return emb, np.arange(first, first + n, dtype=np.float64) * 33.3


def test_append_and_reload(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 10)
    cache = EmbeddingCache(key_for(video), 4, tmp_path / "c")
    cache.append(*batch(3))
    cache.append(*batch(2, 3))
    again = EmbeddingCache(key_for(video), 4, tmp_path / "c")
    assert again.frames == 5 and not again.complete
    assert np.array_equal(again.embeddings(), batch(5)[0])
    assert np.array_equal(again.timestamps(), batch(5)[1])


def test_key_covers_what_changes_the_embeddings(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 10)
    base = key_for(video).digest()
    for change in ({"model_hash": "n" * 64}, {"precision": "fp16"}, {"fps": 25.0},
                   {"crop": Crop(0, 0, 5, 5)}, {"start_s": 1.0}):
        assert key_for(video, **change).digest() != base
    video.write_bytes(b"y" * 11)  # edited video
    assert key_for(video).digest() != base


def test_torn_tail_is_dropped(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    cache = EmbeddingCache(key_for(video), 4, tmp_path)
    cache.append(*batch(4))
    with open(cache.folder / "embeddings.f32", "ab") as f:
        f.write(b"\x00" * 10)  # a batch cut off mid-write, timestamps never written
    again = EmbeddingCache(key_for(video), 4, tmp_path)
    assert again.frames == 4
    again.append(*batch(1, 4))
    assert np.array_equal(EmbeddingCache(key_for(video), 4, tmp_path).embeddings(), batch(5)[0])


def test_completion_range(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    cache = EmbeddingCache(key_for(video), 4, tmp_path)
    cache.append(*batch(2))
    cache.mark_complete(2.0)
    again = EmbeddingCache(key_for(video), 4, tmp_path)
    assert again.covers(1.5) and again.covers(2.0)
    assert not again.covers(3.0) and not again.covers(None)
    again.append(*batch(2, 2))  # a later run extends it
    assert not again.covers(2.0)
    again.mark_complete(None)
    assert EmbeddingCache(key_for(video), 4, tmp_path).covers(None)


def test_mismatched_dimension_starts_over(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    EmbeddingCache(key_for(video), 4, tmp_path).append(*batch(3))
    assert EmbeddingCache(key_for(video), 8, tmp_path).frames == 0
