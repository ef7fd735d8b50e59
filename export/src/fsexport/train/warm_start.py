"""Start training from a built package's encoder: `fsexport train --init-from PKG`.

A package keeps its encoder as ONNX with every BatchNorm folded into the convolution before it.
The same weights go back into a fresh PyTorch encoder of the package's variant: each convolution
takes its folded weights in the graph's order (which is the order the backbone runs them), and
the BatchNorm after a bias-free convolution becomes the identity plus that convolution's folded
bias. The encoder then computes what the package computes (the load is checked: the PyTorch
encoder and ONNX Runtime must agree on frames before training starts).

Identity BatchNorms kept frozen make a poor start for learning anything new (a new axis learned
nothing in thousands of steps that way). restore_batchnorm gives them back their statistics
from the training frames, with scale and shift set so the function stays the same; they then
train as BatchNorms do, and the encoder learns at the rate a fresh one does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fsexport.model import FrameEncoder
from fsrun.errors import FsError, UsageError

TOLERANCE = 1e-3  # largest embedding difference, relative to the embedding's scale


def _batchnorm_after(modules: list[nn.Module], conv: nn.Conv2d) -> nn.BatchNorm2d:
    following = modules[modules.index(conv) + 1:]
    norm = next((m for m in following if isinstance(m, nn.modules.batchnorm._BatchNorm)), None)
    if norm is None or norm.num_features != conv.out_channels:
        raise UsageError("the package's encoder does not fit this variant (a convolution "
                         "without its BatchNorm)")
    return norm


def _stacked_parts(package: Path) -> int:
    """How many packages a stack holds (0 for any other package)."""
    from fsexport.stack import stack_parts  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415

    try:
        return len(stack_parts(load_package(package, verify=False).meta))
    except FsError:
        return 0  # not readable as a package: the checks below say what is wrong


@torch.no_grad()
def load_package_encoder(encoder: FrameEncoder, package: Path) -> None:
    """Copy encoder.onnx of a package into encoder (a FrameEncoder of the package's variant)."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    path = Path(package) / "encoder.onnx"
    if not path.is_file():
        raise UsageError(f"{package}: no encoder.onnx to start from")
    stacked = _stacked_parts(Path(package))
    if stacked:
        raise UsageError(f"{package} is {stacked} packages side by side (fsexport stack): it has "
                         "no one encoder to start from; start from one of its parts")
    graph = onnx.load(str(path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:  # the exporter shares equal tensors through Identity nodes
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    modules = list(encoder.backbone.modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    if len(nodes) != len(convs):
        raise UsageError(f"{package}: its encoder has {len(nodes)} convolutions, the variant "
                         f"{len(convs)}; start from a package of the same variant")
    for node, conv in zip(nodes, convs):
        weight = weights.get(node.input[1])
        if weight is None or tuple(weight.shape) != tuple(conv.weight.shape):
            raise UsageError(f"{package}: its encoder's convolutions do not match the variant's")
        bias = weights[node.input[2]] if len(node.input) > 2 else np.zeros(conv.out_channels,
                                                                           np.float32)
        conv.weight.copy_(torch.from_numpy(weight.copy()))
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(bias.copy()))
            continue
        norm = _batchnorm_after(modules, conv)
        norm.weight.fill_(1.0)
        norm.bias.copy_(torch.from_numpy(bias.copy()))
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)
    fc_weight, fc_bias = weights.get("fc.weight"), weights.get("fc.bias")
    if fc_weight is None or tuple(fc_weight.shape) != tuple(encoder.fc.weight.shape):
        raise UsageError(f"{package}: its Dense({encoder.fc.out_features}) does not fit")
    encoder.fc.weight.copy_(torch.from_numpy(fc_weight.copy()))
    encoder.fc.bias.copy_(torch.from_numpy(fc_bias.copy()))
    _check(encoder, path)


def _check(encoder: FrameEncoder, path: Path) -> None:
    import onnxruntime as ort  # noqa: PLC0415

    frames = np.random.default_rng(0).integers(0, 256, (4, 72, 96, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: frames})[0]
    was_training = encoder.training
    encoder.eval()
    got = encoder(torch.from_numpy(frames)).numpy()
    encoder.train(was_training)
    error = float(np.abs(got - expected).max() / (np.abs(expected).max() + 1e-6))
    if not error < TOLERANCE:
        raise UsageError(f"{path}: the encoder loaded into PyTorch differs from the package's "
                         f"(relative error {error:.2e}); start from a package of the same variant")


@torch.no_grad()
def restore_batchnorm(encoder: FrameEncoder, frames: np.ndarray, count: int = 512,
                      batch: int = 64) -> None:
    """Statistics for the identity BatchNorms of a loaded encoder from `count` of frames (uint8
    [N, H, W, 3]), scale and shift chosen so that it computes the same function in eval mode."""
    norms = [m for m in encoder.backbone.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    kept = [(m, m.bias.clone()) for m in norms]
    for m in norms:  # measure what reaches each BatchNorm, before it changes anything
        m.weight.fill_(1.0)
        m.bias.zero_()
    pick = np.sort(np.random.default_rng(0).permutation(len(frames))[:count])
    measure_batchnorm(encoder, frames[pick], batch)
    for m, bias in kept:
        m.weight.copy_(torch.sqrt(m.running_var + m.eps))  # (x - mean) / std * std + mean + b
        m.bias.copy_(m.running_mean + bias)


@torch.no_grad()
def measure_batchnorm(encoder: FrameEncoder, frames: np.ndarray, batch: int = 64) -> None:
    """Running statistics of every BatchNorm, a plain average over frames in batches of the
    training-mode backbone (scale and shift as they are)."""
    norms = [m for m in encoder.backbone.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    kept = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches
    was_training = encoder.backbone.training
    encoder.backbone.train()
    for start in range(0, len(frames), batch):
        encoder.backbone.forward_features(
            encoder.preprocess(torch.from_numpy(frames[start:start + batch])))
    encoder.backbone.train(was_training)
    for m, momentum in kept:
        m.momentum = momentum
