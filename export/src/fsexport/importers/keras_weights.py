"""Weights of a Keras EfficientNetV2 backbone copied into the timm model built for it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fsexport.importers.keras_file import KerasLayer
from fsrun.errors import ModelError

if TYPE_CHECKING:
    from fsexport.importers.keras_backbone import BlockSpec, FileBlock, _Graph

KNOWN_TIMM = ("tf_efficientnetv2_s", "tf_efficientnetv2_m", "tf_efficientnetv2_l")


def _timm_blocks(model: nn.Module) -> list[nn.Module]:
    return [block for stage in model.blocks for block in stage]


# timm module attribute for each role, per block type.
TIMM_ROLES = {
    "cn": {"project": "conv", "project_bn": "bn1"},
    "er": {"expand": "conv_exp", "expand_bn": "bn1", "project": "conv_pwl", "project_bn": "bn2"},
    "ir": {"expand": "conv_pw", "expand_bn": "bn1", "dw": "conv_dw", "dw_bn": "bn2",
           "project": "conv_pwl", "project_bn": "bn3"},
    "ds": {"dw": "conv_dw", "dw_bn": "bn1", "project": "conv_pw", "project_bn": "bn2"},
}


def load_weights(graph: _Graph, model: nn.Module, stem, blocks: list[FileBlock], top,
          specs: list[BlockSpec]) -> int:
    """Copy every weight; returns the number of tensors copied."""
    count = _copy_conv(graph, stem[0], model.conv_stem) + _copy_bn(graph, stem[1], model.bn1)
    count += _copy_conv(graph, top[0], model.conv_head) + _copy_bn(graph, top[1], model.bn2)
    timm_blocks = _timm_blocks(model)
    if len(timm_blocks) != len(blocks):
        raise ModelError(f"{graph.file.path}: built {len(timm_blocks)} blocks for {len(blocks)}")
    for block, spec, module in zip(blocks, specs, timm_blocks):
        for role, attribute in TIMM_ROLES[spec.kind].items():
            layer, target = block.roles[role], getattr(module, attribute)
            if role.endswith("_bn"):
                count += _copy_bn(graph, layer, target)
            else:
                count += _copy_conv(graph, layer, target)
        if spec.se_chs:
            from timm.models._efficientnet_blocks import SqueezeExcite

            module.se = SqueezeExcite(spec.mid_chs, rd_channels=spec.se_chs,
                                      act_layer=type(module.se.act1))
            count += _copy_conv(graph, block.roles["se_reduce"], module.se.conv_reduce)
            count += _copy_conv(graph, block.roles["se_expand"], module.se.conv_expand)
        if getattr(module, "has_skip", spec.skip) != spec.skip:
            raise graph.refuse(block.roles["project"], "residual connection does not match")
    return count


def _put(graph: _Graph, layer: KerasLayer, target: torch.Tensor, value: np.ndarray,
         what: str) -> int:
    if tuple(target.shape) != tuple(value.shape):
        raise graph.refuse(layer, f"{what} of shape {tuple(value.shape)} does not fit the "
                                  f"derived architecture ({tuple(target.shape)})")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return 1


def _copy_conv(graph: _Graph, layer: KerasLayer, conv: nn.Conv2d) -> int:
    stored = graph.file.weights(layer)
    if "depthwise_kernel" in stored:
        k = stored["depthwise_kernel"]  # [kh, kw, in, multiplier]
        weight = np.transpose(k, (2, 3, 0, 1)).reshape(k.shape[2] * k.shape[3], 1, k.shape[0], k.shape[1])
    elif "kernel" in stored:
        weight = np.transpose(stored["kernel"], (3, 2, 0, 1))  # [kh, kw, in, out] -> [out, in, kh, kw]
    else:
        raise graph.refuse(layer, "its kernel is missing from the file")
    count = _put(graph, layer, conv.weight, weight, "kernel")
    if conv.bias is not None:
        bias = stored.get("bias")
        if bias is None:
            raise graph.refuse(layer, "its bias is missing from the file")
        count += _put(graph, layer, conv.bias, bias, "bias")
    return count


def _copy_bn(graph: _Graph, layer: KerasLayer, norm: nn.BatchNorm2d) -> int:
    if layer.class_name != "BatchNormalization":
        raise graph.refuse(layer, "expected BatchNormalization")
    if layer.config.get("axis") not in (-1, 3, [-1], [3]):
        raise graph.refuse(layer, f"batch norm over axis {layer.config.get('axis')}")
    stored = graph.file.weights(layer)
    n = norm.num_features
    values = {"weight": stored.get("gamma", np.ones(n, np.float32)),
              "bias": stored.get("beta", np.zeros(n, np.float32)),
              "running_mean": stored.get("moving_mean"), "running_var": stored.get("moving_variance")}
    count = 0
    for attribute, value in values.items():
        if value is None:
            raise graph.refuse(layer, f"{attribute.replace('running_', 'moving ')} is missing")
        count += _put(graph, layer, getattr(norm, attribute), value, attribute)
    norm.eps = float(layer.config.get("epsilon", 1e-3))
    return count


def timm_equivalent(model: nn.Module, pad_type: str) -> str | None:
    """The timm model name with exactly this structure, if any (checked without weights)."""
    import timm

    if pad_type != "same" or model.num_features != 1280:  # all of KNOWN_TIMM end in 1280
        return None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    eps = {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    for name in KNOWN_TIMM:
        reference = timm.create_model(name, pretrained=False, num_classes=0, global_pool="",
                                      device="meta")
        if eps == {1e-3} and {k: tuple(v.shape) for k, v in reference.state_dict().items()} == shapes:
            return name
    return None

