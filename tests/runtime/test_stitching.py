"""Windows over the embedding sequence and the weighted overlap that joins their predictions."""
from __future__ import annotations

import numpy as np
import pytest

from fsrun.errors import UsageError
from fsrun.run.stitching import (EDGE_WEIGHT, Stitcher, gather_windows, plan_windows, stitch,
                             taper_weights)


def test_starts_step_by_stride_and_last_window_ends_on_last_frame() -> None:
    plan = plan_windows(200, 60, 30)
    assert plan.starts.tolist() == [0, 30, 60, 90, 120, 140]
    assert plan.starts[-1] + 60 == 200 and not plan.padded
    assert plan_windows(180, 60, 60).starts.tolist() == [0, 60, 120]
    assert plan_windows(181, 60, 60).starts.tolist() == [0, 60, 120, 121]
    assert plan_windows(65, 60, 1).count == 6
    assert plan_windows(60, 60, 30).starts.tolist() == [0]


def test_every_frame_is_covered() -> None:
    for n, stride in [(61, 60), (199, 30), (300, 7), (77, 1)]:
        plan = plan_windows(n, 60, stride)
        covered = np.zeros(n, dtype=int)
        for s in plan.starts:
            covered[s:s + 60] += 1
        assert covered.min() >= 1 and plan.starts.max() + 60 == n


def test_bad_stride_and_empty_clip() -> None:
    for stride in (0, 61):
        with pytest.raises(UsageError):
            plan_windows(100, 60, stride)
    with pytest.raises(UsageError):
        plan_windows(0, 60, 30)


def test_taper_weights_peak_in_the_middle_and_stay_positive() -> None:
    w = taper_weights(60)
    assert w.shape == (60,)
    assert w.min() >= EDGE_WEIGHT and w.max() <= 1.0
    assert w[0] < 0.1 and w[29] > 0.99 and w[30] > 0.99
    assert np.allclose(w, w[::-1])  # symmetric
    assert np.all(np.diff(w[:30]) > 0)  # rises toward the centre


def test_weighted_mean_of_overlapping_windows() -> None:
    plan = plan_windows(90, 60, 30)  # windows at 0 and 30
    predictions = np.stack([np.full(60, 0.2), np.full(60, 0.8)])
    result = stitch(predictions, plan)
    w = taper_weights(60)
    assert result[:30] == pytest.approx(0.2)  # covered by the first window only
    assert result[60:] == pytest.approx(0.8)  # covered by the second window only
    for frame in (30, 45, 59):
        w1, w2 = w[frame], w[frame - 30]
        assert result[frame] == pytest.approx((0.2 * w1 + 0.8 * w2) / (w1 + w2), rel=1e-6)
    # Frame 30 is the first window's middle-right and the second window's left edge.
    assert result[30] < 0.5 < result[59]


def test_constant_signal_survives_any_stride() -> None:
    for stride in (1, 13, 30, 60):
        plan = plan_windows(250, 60, stride)
        truth = np.sin(np.arange(250) / 9) * 0.4 + 0.5
        predictions = np.stack([truth[s:s + 60] for s in plan.starts])
        assert stitch(predictions, plan) == pytest.approx(truth, abs=1e-6)


def test_output_is_clipped_to_unit_range() -> None:
    plan = plan_windows(60, 60, 30)
    result = stitch(np.linspace(-0.5, 1.5, 60)[None], plan)
    assert result.min() == 0.0 and result.max() == 1.0


def test_short_clip_is_padded_with_last_embedding() -> None:
    embeddings = np.arange(20 * 4, dtype=np.float32).reshape(20, 4)
    plan = plan_windows(20, 60, 30)
    assert plan.padded and plan.count == 1
    windows = gather_windows(embeddings, plan)
    assert windows.shape == (1, 60, 4)
    assert np.array_equal(windows[0, :20], embeddings)
    assert np.all(windows[0, 20:] == embeddings[-1])
    result = stitch(np.linspace(0, 1, 60)[None], plan)
    assert result.shape == (20,)  # only the real frames come back
    assert result == pytest.approx(np.linspace(0, 1, 60)[:20], abs=1e-6)


def test_gather_batches_follow_the_plan() -> None:
    embeddings = np.random.default_rng(0).normal(size=(130, 3)).astype(np.float32)
    plan = plan_windows(130, 60, 30)  # starts 0, 30, 60, 70
    first_two = gather_windows(embeddings, plan, 0, 2)
    rest = gather_windows(embeddings, plan, 2, 2)
    assert first_two.shape == (2, 60, 3) and rest.shape == (2, 60, 3)
    assert np.array_equal(rest[1], embeddings[70:130])


def test_stitcher_checks_window_count() -> None:
    plan = plan_windows(90, 60, 30)
    stitcher = Stitcher(plan)
    stitcher.add(np.zeros((1, 60)))
    with pytest.raises(ValueError):
        stitcher.result()
    stitcher.add(np.zeros((1, 60)))
    with pytest.raises(ValueError):
        stitcher.add(np.zeros((1, 60)))
