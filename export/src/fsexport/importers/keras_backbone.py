"""A Keras EfficientNetV2 backbone -> timm's EfficientNet built from the same blocks, weights copied.

The architecture is read from the file, not assumed: every block's type, kernel, stride,
channels, expansion, squeeze-excitation width and residual come from its layers, so S, M, L and
small custom backbones go through the same code. Two naming schemes are known (a table, below):
keras-cv-attention-models ("stack_3_block0_MB_dw_") and Keras applications ("block4a_dwconv2").
Keras blocks map onto timm's: fused with expansion 1 -> ConvBnAct ("cn"), fused -> EdgeResidual
("er"), MBConv -> InvertedResidual ("ir"), MBConv with expansion 1 -> DepthwiseSeparable ("ds").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from torch import nn

from fsexport.importers.keras_file import KerasFile, KerasLayer
from fsexport.importers.keras_weights import load_weights, timm_equivalent
from fsrun.errors import ModelError

# Layers a backbone may hold besides the mapped ones: glue of blocks, SE and padding.
GLUE = {"InputLayer", "Activation", "Add", "Multiply", "Dropout", "ZeroPadding2D",
        "GlobalAveragePooling2D", "Reshape", "TFOpLambda", "SpatialDropout2D"}
ACTIVATIONS = {"swish": "silu", "silu": "silu", "relu": "relu", "relu6": "relu6"}  # Keras -> timm


@dataclass(frozen=True)
class Naming:
    source: str  # library whose layer names these are
    block: str  # regex: block layer name -> (stage, block, suffix)
    stem: tuple[str, str]  # stem conv and batch norm
    top: tuple[str, str]  # last 1x1 conv and batch norm
    roles: dict[str, str]  # block layer suffix -> role


NAMINGS = (
    Naming("keras-cv-attention-models", r"^stack_(\d+)_block(\d+)_(.+)$", ("stem_conv", "stem_bn"),
           ("post_conv", "post_bn"),
           {"sortcut_conv": "expand", "sortcut_bn": "expand_bn", "MB_dw_": "dw", "MB_dw_bn": "dw_bn",
            "se_1_conv": "se_reduce", "se_2_conv": "se_expand", "fu_conv": "project",
            "fu_bn": "project_bn", "MB_pw_conv": "project", "MB_pw_bn": "project_bn"}),
    Naming("keras-applications", r"^block(\d+)([a-z]+)_(.+)$", ("stem_conv", "stem_bn"),
           ("top_conv", "top_bn"),
           {"expand_conv": "expand", "expand_bn": "expand_bn", "dwconv2": "dw", "bn": "dw_bn",
            "se_reduce": "se_reduce", "se_expand": "se_expand", "project_conv": "project",
            "project_bn": "project_bn"}),
)


@dataclass
class FileBlock:
    stage: str  # stage id from the layer names
    prefix: str  # common name prefix of the block's layers
    roles: dict[str, KerasLayer] = field(default_factory=dict)  # role -> layer
    has_add: bool = False  # residual connection present


@dataclass
class BackboneMap:
    model: nn.Module  # timm EfficientNet with the file's weights
    input_size: int  # square input side of the Keras backbone
    scale: np.ndarray  # folded preprocessing: resized 0..255 frame * scale + shift
    shift: np.ndarray
    summary: dict  # provenance: naming, arch, padding, activation, counts
    output_layer: str  # name of the backbone's output layer


class _Graph:
    """Layers of one container by name, with their consumers."""

    def __init__(self, kfile: KerasFile, container: KerasLayer):
        self.file, self.container = kfile, container
        self.layers = {layer.name: layer for layer in container.children}
        self.consumers: dict[str, list[KerasLayer]] = {}
        for layer in container.children:
            for name in layer.inbound:
                self.consumers.setdefault(name, []).append(layer)

    def refuse(self, layer: KerasLayer, why: str) -> ModelError:
        return ModelError(f"{self.file.path}: {layer.describe()} in backbone "
                          f"'{self.container.name}': {why}")

    def producer(self, layer: KerasLayer) -> KerasLayer | None:
        return self.layers.get(layer.inbound[0]) if len(layer.inbound) == 1 else None

    def activation_after(self, layer: KerasLayer) -> str | None:
        """The activation applied to a layer's output (its own or a following Activation)."""
        own = layer.config.get("activation")
        if own not in (None, "linear"):
            return own
        after = self.consumers.get(layer.name, [])
        if len(after) >= 1 and all(c.class_name == "Activation" for c in after):
            acts = {c.config.get("activation") for c in after}
            if len(acts) == 1 and acts != {"linear"}:
                return acts.pop()
        return None


def map_backbone(kfile: KerasFile, backbone: KerasLayer) -> BackboneMap:
    graph = _Graph(kfile, backbone)
    naming = _naming(graph)
    size = _input_size(graph)
    scale, shift, preprocessing = _preprocessing(graph, naming)
    stem, blocks, top = _collect(graph, naming)
    activation = _activation(graph, [stem[1], top[1]])
    pad_type = _padding_style(graph)
    specs = [_block_spec(graph, block, activation) for block in blocks]
    model, arch = _build_timm(graph, stem, top, blocks, specs, pad_type, activation)
    tensors = load_weights(graph, model, stem, blocks, top, specs)
    output = graph.consumers.get(top[1].name, [top[1]])[0]
    summary = {
        "layer_names": naming.source, "timm_equivalent": timm_equivalent(model, pad_type),
        "arch": arch, "stem": f"conv{_kernel(stem[0])[0]} s2 c{stem[0].config['filters']}",
        "num_features": int(top[0].config["filters"]), "input_size": size,
        "padding": {"same": "TensorFlow 'same'", "": "symmetric (ZeroPadding2D)"}[pad_type],
        "activation": activation, "preprocessing": preprocessing,
        "batchnorm_eps": sorted({float(m.eps) for m in model.modules()
                                 if isinstance(m, nn.BatchNorm2d)}),
        "blocks": len(blocks), "tensors": tensors,
    }
    return BackboneMap(model.eval(), size, scale, shift, summary, output.name)


def _naming(graph: _Graph) -> Naming:
    for naming in NAMINGS:
        if naming.stem[0] in graph.layers and any(re.match(naming.block, n) for n in graph.layers):
            return naming
    raise ModelError(f"{graph.file.path}: {graph.container.describe()}: not an EfficientNetV2 "
                     "with keras-cv-attention-models or Keras applications layer names")


def _input_size(graph: _Graph) -> int:
    first = graph.container.children[0]
    shape = first.config.get("batch_input_shape") or first.config.get("batch_shape")
    if first.class_name != "InputLayer" or not shape or len(shape) != 4:
        raise graph.refuse(first, "expected an image input [N, H, W, 3]")
    _, h, w, c = shape
    if h is None or h != w or c != 3:
        raise graph.refuse(first, f"input shape {shape[1:]}: a square RGB input is needed")
    return int(h)


def _preprocessing(graph: _Graph, naming: Naming) -> tuple[np.ndarray, np.ndarray, list]:
    """Fold Rescaling/Normalization between the input and the stem into x * scale + shift."""
    scale, shift = np.ones(3), np.zeros(3)
    steps: list = []
    layer = graph.container.children[0]
    while True:
        after = graph.consumers.get(layer.name, [])
        if len(after) != 1:
            raise graph.refuse(layer, "the input must flow through one chain to the stem")
        layer = after[0]
        if layer.name == naming.stem[0] or layer.class_name == "ZeroPadding2D":
            return scale.astype(np.float32), shift.astype(np.float32), steps
        if layer.class_name == "Rescaling":
            a = np.broadcast_to(np.asarray(layer.config.get("scale", 1.0), np.float64), (3,))
            b = np.broadcast_to(np.asarray(layer.config.get("offset", 0.0), np.float64), (3,))
            scale, shift = scale * a, shift * a + b
            steps.append({"rescaling": {"scale": a.tolist(), "offset": b.tolist()}})
        elif layer.class_name == "Normalization":
            mean, var = _normalization_stats(graph, layer)
            denominator = np.maximum(np.sqrt(var), 1e-7)  # Keras: max(sqrt(var), epsilon())
            scale, shift = scale / denominator, (shift - mean) / denominator
            steps.append({"normalization": {"mean": mean.tolist(), "variance": var.tolist()}})
        else:
            raise graph.refuse(layer, "only Rescaling and Normalization may come before the stem")


def _normalization_stats(graph: _Graph, layer: KerasLayer) -> tuple[np.ndarray, np.ndarray]:
    config = layer.config
    if config.get("invert"):
        raise graph.refuse(layer, "an inverted Normalization is not preprocessing")
    if config.get("axis") not in (-1, 3, [-1], [3]):
        raise graph.refuse(layer, f"normalization over axis {config.get('axis')}, not channels")
    if config.get("mean") is not None and config.get("variance") is not None:
        mean, var = config["mean"], config["variance"]
    else:
        stored = graph.file.weights(layer)
        if "mean" not in stored or "variance" not in stored:
            raise graph.refuse(layer, "its mean and variance are neither in the config nor stored")
        mean, var = stored["mean"], stored["variance"]
    mean = np.broadcast_to(np.asarray(mean, np.float64).reshape(-1), (3,)).astype(np.float64)
    var = np.broadcast_to(np.asarray(var, np.float64).reshape(-1), (3,)).astype(np.float64)
    return mean, var


def _collect(graph: _Graph, naming: Naming):
    """Stem, blocks in order, top; the first layer that fits none of them is refused."""
    pattern = re.compile(naming.block)
    blocks: dict[str, FileBlock] = {}
    stem = [graph.layers[naming.stem[0]], graph.layers.get(naming.stem[1])]
    top = [graph.layers.get(naming.top[0]), graph.layers.get(naming.top[1])]
    for layer in graph.container.children:
        if layer.name in naming.stem + naming.top or layer.class_name in ("Rescaling", "Normalization"):
            continue
        match = pattern.match(layer.name)
        role = naming.roles.get(match.group(3)) if match else None
        if match and role:
            prefix = layer.name[: len(layer.name) - len(match.group(3))]
            block = blocks.setdefault(prefix, FileBlock(match.group(1), prefix))
            block.roles[role] = layer
            continue
        if layer.class_name not in GLUE:
            raise graph.refuse(layer, "does not fit an EfficientNetV2 block of "
                                      f"{naming.source} (unknown layer here)")
        if layer.class_name == "TFOpLambda" and "reduce_mean" not in layer.config.get("function", ""):
            raise graph.refuse(layer, f"operation {layer.config.get('function')} is not supported")
        if match and layer.class_name == "Add":
            prefix = layer.name[: len(layer.name) - len(match.group(3))]
            blocks.setdefault(prefix, FileBlock(match.group(1), prefix)).has_add = True
    for role_layer, expected in zip(stem + top, naming.stem + naming.top):
        if role_layer is None:
            raise ModelError(f"{graph.file.path}: backbone '{graph.container.name}' has no "
                             f"layer '{expected}'")
    return stem, list(blocks.values()), top


def _kernel(layer: KerasLayer) -> tuple[int, int]:
    k = layer.config.get("kernel_size", 1)
    return tuple(k) if isinstance(k, (list, tuple)) else (k, k)


def _stride(layer: KerasLayer) -> int:
    s = layer.config.get("strides", 1)
    s = tuple(s) if isinstance(s, (list, tuple)) else (s, s)
    return int(s[0]) if s[0] == s[1] else -1


def _activation(graph: _Graph, norms: list[KerasLayer]) -> str:
    name = graph.activation_after(norms[0])
    if name not in ACTIVATIONS:
        raise graph.refuse(norms[0], f"activation {name!r} is not supported "
                                     f"(known: {', '.join(ACTIVATIONS)})")
    return name


def _padding_style(graph: _Graph) -> str:
    """timm pad_type: "same" for TensorFlow padding, "" for explicit symmetric padding."""
    styles: dict[str, KerasLayer] = {}
    for layer in graph.container.children:
        if layer.class_name not in ("Conv2D", "DepthwiseConv2D") or max(_kernel(layer)) == 1:
            continue
        k = _kernel(layer)
        before = graph.producer(layer)
        padding = layer.config.get("padding")
        if before is not None and before.class_name == "ZeroPadding2D" and padding == "valid":
            pad = np.asarray(before.config.get("padding"), dtype=int).reshape(-1).tolist()
            sides = {1: pad * 4, 2: [pad[0], pad[0], pad[1], pad[1]], 4: pad}.get(len(pad))
            if sides != [k[0] // 2, k[0] // 2, k[1] // 2, k[1] // 2]:
                raise graph.refuse(before, f"padding {pad} is not symmetric kernel//2")
            styles.setdefault("", layer)
        elif padding == "same":
            styles.setdefault("same", layer)
        else:
            raise graph.refuse(layer, f"padding {padding!r} without a ZeroPadding2D before it")
        if layer.config.get("dilation_rate", 1) not in (1, [1, 1], (1, 1)):
            raise graph.refuse(layer, "dilated convolutions are not supported")
    if len(styles) > 1:
        raise graph.refuse(styles[""], "mixes 'same' and explicit symmetric padding")
    return next(iter(styles), "same")


@dataclass
class BlockSpec:
    kind: str  # timm block type: cn, er, ir, ds
    kernel: int  # spatial kernel of the block's strided conv
    stride: int  # 1 or 2
    in_chs: int  # block input channels
    mid_chs: int  # expanded channels
    out_chs: int  # block output channels
    se_chs: int  # squeeze-excitation reduced width (0: none)
    skip: bool  # residual connection

    def arch(self) -> str:
        """timm block string, without the repeat count."""
        text = f"{self.kind}_k{self.kernel}_s{self.stride}"
        if self.kind in ("er", "ir"):
            ratio = self.mid_chs / self.in_chs
            text += f"_e{int(ratio) if ratio == int(ratio) else ratio}"
        text += f"_c{self.out_chs}"
        if self.se_chs:
            text += f"_se{self.se_chs / self.in_chs:g}"
        would_skip = self.stride == 1 and self.in_chs == self.out_chs
        if self.kind == "cn" and self.skip:
            text += "_skip"
        elif self.kind != "cn" and would_skip and not self.skip:
            text += "_noskip"
        return text


def _block_spec(graph: _Graph, block: FileBlock, activation: str) -> BlockSpec:
    r = block.roles
    first = next(iter(r.values()))
    for role in ("project", "project_bn"):
        if role not in r:
            raise graph.refuse(first, f"block '{block.prefix}' has no {role.replace('_', ' ')} layer")
    expand, dw, project = r.get("expand"), r.get("dw"), r["project"]
    kind = {(True, True): "ir", (True, False): "er", (False, True): "ds", (False, False): "cn"}[
        (expand is not None, dw is not None)]
    strided = {"ir": dw, "ds": dw, "er": expand, "cn": project}[kind]
    for layer in (expand, dw, project):
        if layer is not None and layer is not strided and (max(_kernel(layer)) != 1 or _stride(layer) != 1):
            raise graph.refuse(layer, f"a {kind} block needs this convolution 1x1, stride 1")
        if layer is not None and (layer.config.get("use_bias") or layer.config.get("groups", 1) != 1):
            raise graph.refuse(layer, "convolutions with bias or groups are not supported here")
    kernel = _kernel(strided)
    if kernel[0] != kernel[1] or _stride(strided) not in (1, 2):
        raise graph.refuse(strided, f"kernel {kernel} stride {strided.config.get('strides')}")
    if dw is not None and dw.config.get("depth_multiplier", 1) != 1:
        raise graph.refuse(dw, "depth_multiplier other than 1 is not supported")
    activated = {"expand_bn": True, "dw_bn": True, "project_bn": kind == "cn"}
    for role, wanted in activated.items():
        if role in r:
            got = graph.activation_after(r[role])
            if (got is not None) != wanted or (wanted and got != activation):
                raise graph.refuse(r[role], f"activation {got!r} after it, expected "
                                            f"{activation if wanted else None!r}")
    in_chs = _in_channels(graph, expand or dw or project)
    mid = int(expand.config["filters"]) if expand is not None else in_chs
    se = r.get("se_reduce")
    if se is not None and kind == "cn":
        raise graph.refuse(se, "squeeze-excitation in a fused block without expansion")
    if (se is None) != ("se_expand" not in r):
        raise graph.refuse(se or r["se_expand"], "squeeze-excitation needs both its convolutions")
    if se is not None:
        if graph.activation_after(se) != activation:
            raise graph.refuse(se, f"squeeze-excitation activation must be {activation!r}")
        if graph.activation_after(r["se_expand"]) != "sigmoid":
            raise graph.refuse(r["se_expand"], "squeeze-excitation gate must be a sigmoid")
    return BlockSpec(kind, kernel[0], _stride(strided), in_chs, mid, int(project.config["filters"]),
                     int(se.config["filters"]) if se is not None else 0, block.has_add)


def _in_channels(graph: _Graph, layer: KerasLayer) -> int:
    stored = graph.file.weights(layer)
    kernel = stored.get("kernel", stored.get("depthwise_kernel"))
    if kernel is None:
        raise graph.refuse(layer, "its kernel is missing from the file")
    return int(kernel.shape[2])


def _stages(blocks: list[FileBlock], specs: list[BlockSpec]) -> list[list[str]]:
    """timm arch_def: the file's stages, runs of equal blocks written as one string."""
    stages: list[list[list]] = []
    previous_stage = None
    for block, spec in zip(blocks, specs):
        if block.stage != previous_stage or spec.stride != 1:
            stages.append([])
            previous_stage = block.stage
        runs = stages[-1]
        later = spec.arch().replace(f"_s{spec.stride}", "_s1")
        if runs and runs[-1][2] == later and spec.stride == 1:
            runs[-1][1] += 1
        else:
            runs.append([spec.arch(), 1, later])
    return [[_with_repeats(text, n) for text, n, _ in runs] for runs in stages]


def _with_repeats(text: str, repeats: int) -> str:
    kind, rest = text.split("_", 1)
    return f"{kind}_r{repeats}_{rest}"


def _build_timm(graph: _Graph, stem, top, blocks: list[FileBlock], specs: list[BlockSpec],
                pad_type: str, activation: str) -> tuple[nn.Module, list[list[str]]]:
    from timm.layers import set_layer_config
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    arch = _stages(blocks, specs)
    total_stride = 2 * int(np.prod([s.stride for s in specs]))
    with set_layer_config(exportable=True):
        model = EfficientNet(
            block_args=decode_arch_def(arch), num_classes=0, global_pool="",
            num_features=int(top[0].config["filters"]), stem_size=int(stem[0].config["filters"]),
            stem_kernel_size=_kernel(stem[0])[0], fix_stem=True, round_chs_fn=lambda c: c,
            output_stride=max(32, total_stride), pad_type=pad_type,
            act_layer=ACTIVATIONS[activation], norm_layer=partial(nn.BatchNorm2d, eps=1e-3))
    if _stride(stem[0]) != 2:
        raise graph.refuse(stem[0], "the stem must have stride 2")
    return model, arch
