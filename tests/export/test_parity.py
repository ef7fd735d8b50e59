"""The parity check itself: it must reject a graph that computes something else."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fsexport.model import create_model
from fsexport.onnx_export import export_graph
from fsexport.parity import ParityReport, check_graph, float32_noise
from fsexport.variants import get_variant
from fsrun.errors import ModelError


def test_a_graph_of_other_weights_is_rejected(tmp_path: Path) -> None:
    variant = get_variant("tiny")
    model = create_model(variant, seed=0)
    other = create_model(variant, seed=1)
    with torch.no_grad():
        other.head.fc.bias.fill_(0.5)
    path = export_graph(other, "head", tmp_path / "head.onnx")
    with pytest.raises(ModelError, match="differs from PyTorch"):
        check_graph(model, "head", path, "fp32", ParityReport())
    report = ParityReport()
    check_graph(other, "head", path, "fp32", report)
    assert report.diffs["head.onnx"] <= 1e-4


def test_float32_noise_is_small_and_measured() -> None:
    model = create_model(get_variant("tiny"), seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model.encoder(torch.from_numpy(frames)).numpy()
    noise = float32_noise(model.encoder, frames, expected)
    assert 0.0 < noise < 1e-4
    assert float32_noise(model.encoder, frames, expected + 0.25) >= 0.25 - 1e-4
