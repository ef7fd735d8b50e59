"""The baseline's split form (encoder + head per window, for packages without model.onnx) runs
the composite's computation: one window through both forms gives the same positions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from typing import Any

from benchmarks.baseline import window_model
from fsrun.model.package import load_package


class WithoutComposite:
    """The package as `fsexport build --no-composite` would have written it: no model.onnx."""

    def __init__(self, package: Any):
        self.package = package

    def has_graph(self, kind: str, precision: str = "fp32") -> bool:
        return kind != "model" and self.package.has_graph(kind, precision)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.package, name)


def test_split_window_model_matches_the_composite(built_tiny_package: Path) -> None:
    package = load_package(built_tiny_package)
    meta = package.meta
    rng = np.random.default_rng(6)
    window = rng.integers(0, 256, (1, meta.window, meta.input_size, meta.input_size, 3),
                         dtype=np.uint8)
    composite, graph = window_model(package, "cpu", "fp32", threads=1)
    assert graph == "model.onnx"
    split, split_graph = window_model(WithoutComposite(package), "cpu", "fp32", threads=1)
    assert split_graph == "encoder.onnx + head.onnx per window"
    try:
        expected = np.asarray(composite.run(window))
        got = split.run(window)
    finally:
        composite.close()
        split.close()
    assert got.shape == expected.shape == (1, meta.window)
    assert np.max(np.abs(got - expected)) < 1e-4
    assert np.std(expected) > 0  # the window's positions are not all one value
