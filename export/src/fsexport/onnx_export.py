"""PyTorch -> ONNX for the three graphs of a package, at fp32 and fp16.

The TorchScript-based exporter is used because it emits ONNX LSTM nodes, which TensorRT's
ONNX parser and every ONNX Runtime provider run natively.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fsexport.model import WindowModel

OPSET = 17  # TensorRT 10/11 and ONNX Runtime >= 1.14 all parse it


class _Float32Out(nn.Module):
    """fp16 graph with float32 embeddings in (when given) and float32 out."""

    def __init__(self, inner: nn.Module, cast_input: bool):
        super().__init__()
        self.inner = inner
        self.cast_input = cast_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cast_input:
            x = x.half()
        return self.inner(x).float()


@dataclass(frozen=True)
class GraphSpec:
    kind: str  # encoder, head or model
    input_name: str  # graph input
    output_name: str  # graph output
    dynamic_axes: dict  # input axis -> name, output axis -> name
    takes_frames: bool  # uint8 frames in (no fp16 cast of the input)


GRAPHS: dict[str, GraphSpec] = {
    "encoder": GraphSpec("encoder", "frames", "embeddings",
                         {"frames": {0: "N", 1: "H", 2: "W"}, "embeddings": {0: "N"}}, True),
    "head": GraphSpec("head", "embeddings", "positions",
                      {"embeddings": {0: "B"}, "positions": {0: "B"}}, False),
    "model": GraphSpec("model", "frames", "positions",
                       {"frames": {0: "B", 2: "H", 3: "W"}, "positions": {0: "B"}}, True),
}


def graph_module(model: WindowModel, kind: str) -> nn.Module:
    return {"encoder": model.encoder, "head": model.head, "model": model}[kind]


def example_input(model: WindowModel, kind: str, frame_hw: tuple[int, int] = (72, 96)) -> torch.Tensor:
    window = model.head.window
    h, w = frame_hw
    if kind == "encoder":
        return torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8)
    if kind == "head":
        return torch.randn(2, window, model.head.embedding_dim)
    return torch.randint(0, 256, (1, window, h, w, 3), dtype=torch.uint8)


def export_graph(model: WindowModel, kind: str, path: Path, precision: str = "fp32") -> Path:
    """Write one graph; fp16 keeps uint8/float32 inputs and float32 outputs."""
    spec = GRAPHS[kind]
    # The TorchScript exporter can change BatchNorm buffers of the module it traces (seen with
    # timm's BatchNormAct2d), so it only ever sees a copy: the model stays the parity reference.
    module = copy.deepcopy(graph_module(model, kind))
    if precision == "fp16":
        module = _Float32Out(module.half(), cast_input=not spec.takes_frames)
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and LSTM-batch-size notices: not actionable
        torch.onnx.export(
            module, (example_input(model, kind),), str(path),
            input_names=[spec.input_name], output_names=[spec.output_name],
            dynamic_axes=spec.dynamic_axes, opset_version=OPSET, dynamo=False,
            do_constant_folding=True,
        )
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    return path
