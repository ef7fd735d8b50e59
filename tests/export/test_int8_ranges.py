"""MSE activation ranges (fsexport.int8_ranges): the costs match a direct sum, and the chosen
range quantizes calibration-like values with less error than MinMax's extremes."""
from __future__ import annotations

import numpy as np
import pytest

from fsexport.int8_ranges import LEVELS, clipping_costs, mse_range


def quantize_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """ONNX Runtime's asymmetric uint8 QuantizeLinear + DequantizeLinear."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / LEVELS
    zero_point = np.round(-low / scale)
    return (np.clip(np.round(values / scale) + zero_point, 0, LEVELS) - zero_point) * scale


def test_clipping_costs_match_a_direct_sum() -> None:
    rng = np.random.default_rng(1)
    centres = np.sort(rng.normal(0, 2, 300))
    counts = rng.integers(0, 50, 300).astype(np.float64)
    bounds = np.array([-5.0, -1.0, 0.0, 0.7, 3.0, 9.0])
    above = clipping_costs(centres, counts, bounds, above=True)
    below = clipping_costs(centres, counts, bounds, above=False)
    for i, b in enumerate(bounds):
        over, under = centres > b, centres < b
        direct_above = np.sum(counts[over] * (centres[over] - b) ** 2)
        direct_below = np.sum(counts[under] * (centres[under] - b) ** 2)
        assert above[i] == pytest.approx(direct_above, rel=1e-9, abs=1e-6)
        assert below[i] == pytest.approx(direct_below, rel=1e-9, abs=1e-6)


def test_mse_range_beats_minmax_on_a_heavy_tail() -> None:
    rng = np.random.default_rng(2)
    # Mostly small values and a few extremes, like a conv output with rare large activations.
    values = np.concatenate([rng.normal(0.0, 1.0, 200_000), rng.normal(0.0, 1.0, 20) * 12.0])
    values = values.astype(np.float32)
    counts, edges = np.histogram(values, 4096, range=(values.min(), values.max()))
    low, high = mse_range(counts, edges, values.min(), values.max())
    assert values.min() <= low < 0.0 < high <= values.max()
    assert high < 0.9 * values.max()  # clips the tail
    chosen = np.mean((quantize_uint8(values, low, high) - values) ** 2)
    extremes = np.mean((quantize_uint8(values, values.min(), values.max()) - values) ** 2)
    assert chosen < 0.8 * extremes


def test_mse_range_keeps_a_bounded_distribution_whole() -> None:
    rng = np.random.default_rng(3)
    # SiLU-like: a short negative side and a uniform positive body with no tail worth clipping.
    values = np.concatenate([rng.uniform(-0.27, 0.0, 20_000), rng.uniform(0.0, 6.0, 80_000)])
    counts, edges = np.histogram(values, 2048, range=(-6.0, 6.0))
    low, high = mse_range(counts, edges, values.min(), values.max())
    assert high >= 0.97 * values.max() and low <= 0.9 * values.min()


def test_mse_range_of_empty_or_one_sided_data() -> None:
    edges = np.linspace(-1.0, 1.0, 9)
    assert mse_range(np.zeros(8), edges, -1.0, 1.0) == (-1.0, 1.0)
    counts = np.array([0, 0, 0, 0, 5, 5, 5, 5])
    low, high = mse_range(counts, edges, 0.0, 1.0)
    assert low == 0.0 and 0.0 < high <= 1.0
