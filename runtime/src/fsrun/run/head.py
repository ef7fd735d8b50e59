"""The head and stitching: every window of the embeddings through the head, blended into one
position per sampled frame."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from fsrun.run.encode import Stages, Store
from fsrun.errors import ModelError
from fsrun.run.stitching import Stitcher, WindowPlan, gather_windows


def collect_embeddings(store: Store, end: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(pts_ms [n], embeddings [n, dim]) of this run from its store; frames at or past `end`
    (seconds) are left out, since a cache entry may hold more."""
    pts_ms, embeddings = store.timestamps(), store.embeddings()
    if end is not None:
        keep = int(np.searchsorted(pts_ms, end * 1000.0 - 1e-3))
        pts_ms, embeddings = pts_ms[:keep], embeddings[:keep]
    return pts_ms, embeddings


def run_head(head: Any, embeddings: np.ndarray, plan: WindowPlan, batch: int,
             stages: Stages, progress: Callable[[int, int], None] | None = None,
             axes: int = 1) -> tuple[np.ndarray, int]:
    """Positions [n] in 0..1 from the head over every window of the plan, `batch` at a time
    ([n, axes] from a head of several axes, which returns [B, window, axes]); also the number
    of head calls. progress(windows done, windows) after each call."""
    stitchers = [Stitcher(plan) for _ in range(axes)]
    shape = f"[B, {plan.window}]" if axes == 1 else f"[B, {plan.window}, {axes}]"
    calls = 0
    for first in range(0, plan.count, batch):
        began = time.perf_counter()
        windows = gather_windows(embeddings, plan, first, batch)
        began = stages.add("stitch", began)
        predictions = np.asarray(head.run(windows))
        began = stages.add("head", began)
        expected = (len(windows), plan.window) + ((axes,) if axes > 1 else ())
        if predictions.shape != expected:
            raise ModelError(f"the head returned {list(predictions.shape)} for "
                             f"{len(windows)} windows; a model must give {shape} "
                             "positions")
        if not np.isfinite(predictions).all():  # broken weights: no script is right then
            raise ModelError(f"the head returned NaN or infinite positions (windows {first}-"
                             f"{first + len(windows) - 1}); the model is broken")
        for c, stitcher in enumerate(stitchers):
            stitcher.add(predictions if axes == 1 else predictions[..., c])
        stages.add("stitch", began)
        calls += 1
        if progress is not None:
            progress(min(first + batch, plan.count), plan.count)
    if axes == 1:
        return stitchers[0].result(), calls
    return np.stack([s.result() for s in stitchers], axis=1), calls
