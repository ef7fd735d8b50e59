"""The creator's Keras model -> a PyTorch WindowModel, read from the file's own layer list.

Expected shape of the model (anything else is refused, naming the first layer that does not fit):
    Input [T, H, W, 3] -> TimeDistributed(per-frame model: EfficientNetV2 backbone, Flatten,
    Dense...) -> any chain of Dropout, (Bidirectional) LSTM, Dense, Flatten, Activation -> [B, T]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsexport.importers.keras_backbone import BackboneMap, map_backbone
from fsexport.importers.keras_file import CONTAINERS, KerasFile, KerasLayer
from fsexport.model import FrameEncoder, WindowModel
from fsexport.variants import Variant
from fsrun.errors import ModelError

# Keras activation name -> function (None: identity).
ACTIVATIONS = {"linear": None, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "swish": F.silu, "silu": F.silu}
IGNORED = {"Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "InputLayer"}


class DenseStep(nn.Module):
    """Keras Dense (on the last axis, like Keras on 2-D and 3-D input) and its activation."""

    def __init__(self, in_features: int, units: int, activation: str):
        super().__init__()
        self.linear = nn.Linear(in_features, units)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(self.linear(x), self.activation)


class ActivationStep(nn.Module):
    def __init__(self, activation: str):
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _activate(x, self.activation)


class FlattenStep(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class RecurrentStep(nn.Module):
    """Keras LSTM or Bidirectional(LSTM, merge_mode="concat")."""

    def __init__(self, in_features: int, units: int, bidirectional: bool, sequences: bool):
        super().__init__()
        self.lstm = nn.LSTM(in_features, units, batch_first=True, bidirectional=bidirectional)
        self.sequences = sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, (h_n, _) = self.lstm(x)
        if self.sequences:
            return out
        # Keras returns the last state of each direction: [forward last, backward last].
        return torch.cat([h_n[0], h_n[1]], dim=-1) if self.lstm.bidirectional else h_n[0]


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    function = ACTIVATIONS[name]
    return x if function is None else function(x)


class ImportedHead(nn.Module):
    """embeddings [B, T, D] -> positions [B, T] through the file's own chain of steps."""

    def __init__(self, window: int, embedding_dim: int, steps: list[nn.Module]):
        super().__init__()
        self.window = window
        self.embedding_dim = embedding_dim
        self.steps = nn.ModuleList(steps)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = embeddings
        for step in self.steps:
            x = step(x)
        return x


class ImportedEncoder(FrameEncoder):
    """FrameEncoder with the file's preprocessing and its own per-frame Dense stack."""

    def __init__(self, backbone: nn.Module, variant: Variant, scale: np.ndarray,
                 shift: np.ndarray, tail: list[nn.Module]):
        super().__init__(backbone, variant, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        del self.fc, self.dropout
        self.scale.copy_(torch.from_numpy(scale).view(1, 3, 1, 1))
        self.shift.copy_(torch.from_numpy(shift).view(1, 3, 1, 1))
        self.tail = nn.Sequential(*tail)

    def embed_features(self, flat: torch.Tensor) -> torch.Tensor:
        return self.tail(flat)


@dataclass
class MappedModel:
    model: WindowModel  # the PyTorch model holding the file's weights
    window: int  # T, frames in and positions out
    input_size: int  # square frame side of the Keras model
    embedding_dim: int  # per-frame embedding width D
    backbone: BackboneMap  # backbone mapping and its summary
    layers: list[str] = field(default_factory=list)  # "keras layer -> torch step" lines


class _Reader:
    def __init__(self, kfile: KerasFile):
        self.file = kfile
        self.table: list[str] = []

    def refuse(self, layer: KerasLayer, why: str) -> ModelError:
        return ModelError(f"{self.file.path}: {layer.describe()}: {why}")

    def chain(self, container: KerasLayer) -> list[KerasLayer]:
        """A container's layers, checked to form one straight chain."""
        layers = container.children
        for before, layer in zip(layers, layers[1:]):
            if layer.inbound != [before.name]:
                raise self.refuse(layer, f"inputs {layer.inbound}: only a straight chain of "
                                         f"layers is supported (after '{before.name}')")
        return layers

    def dense(self, layer: KerasLayer, width: int) -> DenseStep:
        activation = layer.config.get("activation", "linear")
        if activation not in ACTIVATIONS:
            raise self.refuse(layer, f"activation {activation!r} is not supported "
                                     f"(known: {', '.join(ACTIVATIONS)})")
        stored = self.file.weights(layer)
        units = int(layer.config["units"])
        kernel = stored.get("kernel")
        if kernel is None or kernel.shape != (width, units):
            got = None if kernel is None else kernel.shape
            raise self.refuse(layer, f"kernel {got} does not take the {width} inputs it receives")
        step = DenseStep(width, units, activation)
        with torch.no_grad():
            step.linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            step.linear.bias.copy_(torch.from_numpy(stored.get("bias", np.zeros(units, np.float32))))
        self.table.append(f"{layer.name}: Dense({units}, {activation})")
        return step

    def recurrent(self, layer: KerasLayer, width: int) -> tuple[RecurrentStep, int, bool]:
        bidirectional = layer.class_name == "Bidirectional"
        cell = layer.wrapped if bidirectional else layer
        if cell is None or cell.class_name != "LSTM":
            kind = cell.class_name if cell is not None else "nothing"
            raise self.refuse(layer, f"{kind} is not supported (only LSTM and Bidirectional(LSTM))")
        c = cell.config
        checks = [(c.get("activation", "tanh") == "tanh", f"activation {c.get('activation')!r}"),
                  (c.get("recurrent_activation", "sigmoid") == "sigmoid",
                   f"recurrent_activation {c.get('recurrent_activation')!r}"),
                  (not c.get("go_backwards") or bidirectional, "go_backwards"),
                  (not c.get("stateful"), "stateful"), (not c.get("return_state"), "return_state"),
                  (not c.get("time_major"), "time_major"),
                  (layer.config.get("merge_mode", "concat") == "concat" or not bidirectional,
                   f"merge_mode {layer.config.get('merge_mode')!r}")]
        for ok, what in checks:
            if not ok:
                raise self.refuse(layer, f"{what} is not supported (PyTorch's LSTM: tanh/sigmoid, "
                                         "concatenated directions)")
        units, sequences = int(c["units"]), bool(c.get("return_sequences", False))
        step = RecurrentStep(width, units, bidirectional, sequences)
        directions = [("forward", ""), ("backward", "_reverse")] if bidirectional else [(None, "")]
        for direction, suffix in directions:
            stored = self.file.weights(layer, direction)
            self._copy_lstm(layer, stored, step.lstm, suffix, width, units)
        self.table.append(f"{layer.name}: {'Bidirectional(' if bidirectional else '('}"
                          f"LSTM({units}, return_sequences={sequences}))")
        return step, units * (2 if bidirectional else 1), sequences

    def _copy_lstm(self, layer: KerasLayer, stored: dict, lstm: nn.LSTM, suffix: str,
                   width: int, units: int) -> None:
        """Keras gates i, f, c, o = PyTorch's i, f, g, o; Keras' one bias goes to bias_ih."""
        expected = {"kernel": (width, 4 * units), "recurrent_kernel": (units, 4 * units)}
        for kind, shape in expected.items():
            if kind not in stored or stored[kind].shape != shape:
                got = stored[kind].shape if kind in stored else "missing"
                raise self.refuse(layer, f"LSTM {kind} {got}, expected {shape}")
        bias = stored.get("bias", np.zeros(4 * units, np.float32))
        with torch.no_grad():
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(stored["kernel"].T.copy()))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(
                torch.from_numpy(stored["recurrent_kernel"].T.copy()))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(bias))
            getattr(lstm, f"bias_hh_l0{suffix}").zero_()


def read_keras_model(kfile: KerasFile, fps: float) -> MappedModel:
    reader = _Reader(kfile)
    root = kfile.root
    if root.class_name not in CONTAINERS:
        raise ModelError(f"{kfile.path}: the file holds a {root.class_name}, not a model")
    layers = reader.chain(root)
    window, size = _video_input(reader, layers[0])
    index = 1
    frame_layers: list[KerasLayer] = []
    while index < len(layers) and (layers[index].class_name == "TimeDistributed"
                                   or (frame_layers and layers[index].class_name in IGNORED)):
        layer = layers[index]
        inner = layer.wrapped
        if inner is None:
            pass
        elif inner.class_name in CONTAINERS:
            frame_layers += [c for c in reader.chain(inner) if c.class_name != "InputLayer"]
        else:
            frame_layers.append(inner)
        index += 1
    if not frame_layers or frame_layers[0].class_name not in CONTAINERS:
        first = frame_layers[0] if frame_layers else layers[min(index, len(layers) - 1)]
        raise reader.refuse(first, "expected TimeDistributed over an EfficientNetV2 backbone model")
    backbone = map_backbone(kfile, frame_layers[0])
    if backbone.input_size != size:
        raise reader.refuse(frame_layers[0], f"backbone input {backbone.input_size} px, frames {size} px")
    reader.table.append(f"{frame_layers[0].name}: EfficientNetV2 -> timm EfficientNet "
                        f"({backbone.summary['blocks']} blocks, {backbone.summary['tensors']} tensors)")
    tail, width = _frame_tail(reader, frame_layers[1:], backbone)
    steps, out_kind, out_width = _sequence(reader, layers[index:], width, window)
    if out_kind != "vec" or out_width != window:
        shape = f"[B, {out_width}]" if out_kind == "vec" else f"[B, T, {out_width}]"
        raise reader.refuse(layers[-1], f"the model's output is {shape}; positions [B, {window}] "
                                        f"(one per input frame) are needed")
    variant = Variant("imported", backbone.summary.get("timm_equivalent") or "efficientnetv2-custom",
                      size, window=window, fps=fps, embedding_dim=width, dropout=0.0)
    encoder = ImportedEncoder(backbone.model, variant, backbone.scale, backbone.shift, tail)
    head = ImportedHead(window, width, steps)
    return MappedModel(WindowModel(encoder, head).eval(), window, size, width, backbone, reader.table)


def _video_input(reader: _Reader, first: KerasLayer) -> tuple[int, int]:
    shape = first.config.get("batch_input_shape") or first.config.get("batch_shape")
    if first.class_name != "InputLayer" or not shape or len(shape) != 5:
        raise reader.refuse(first, "expected a video input [B, T, H, W, 3]")
    _, window, h, w, c = shape
    if window is None or h is None or h != w or c != 3:
        raise reader.refuse(first, f"input shape {shape[1:]}: fixed T and square RGB frames needed")
    return int(window), int(h)


def _frame_tail(reader: _Reader, layers: list[KerasLayer], backbone: BackboneMap):
    """Flatten then Dense/Activation layers applied to each frame's features."""
    if not layers or layers[0].class_name != "Flatten":
        got = layers[0] if layers else None
        if got is None:
            raise ModelError(f"{reader.file.path}: no Flatten after the backbone")
        raise reader.refuse(got, "only Flatten may follow the backbone (the features are flattened "
                                 "channels-last, as Keras does)")
    width = None
    tail: list[nn.Module] = []
    for layer in layers[1:]:
        if layer.class_name in IGNORED:
            continue
        if width is None:
            width = _flat_width(reader, layers[0], backbone)
        if layer.class_name == "Dense":
            step = reader.dense(layer, width)
            tail.append(step)
            width = step.linear.out_features
        elif layer.class_name == "Activation":
            tail.append(_activation_step(reader, layer))
        else:
            raise reader.refuse(layer, "not supported in the per-frame part (Flatten, Dense, "
                                       "Dropout, Activation)")
    return tail, width if width is not None else _flat_width(reader, layers[0], backbone)


def _flat_width(reader: _Reader, flatten: KerasLayer, backbone: BackboneMap) -> int:
    """h * w * C of the backbone's feature map at the model's input size."""
    with torch.no_grad():
        size = backbone.input_size
        features = backbone.model.forward_features(torch.zeros(1, 3, size, size))
    return int(np.prod(features.shape[1:]))


def _activation_step(reader: _Reader, layer: KerasLayer) -> ActivationStep:
    activation = layer.config.get("activation")
    if activation not in ACTIVATIONS:
        raise reader.refuse(layer, f"activation {activation!r} is not supported")
    reader.table.append(f"{layer.name}: Activation({activation})")
    return ActivationStep(activation)


def _sequence(reader: _Reader, layers: list[KerasLayer], width: int, window: int):
    """Steps after the per-frame part; tracks [B, T, C] ("seq") or [B, C] ("vec")."""
    steps: list[nn.Module] = []
    kind = "seq"
    for layer in layers:
        cls = layer.class_name
        inner = layer.wrapped if cls == "TimeDistributed" else None
        if cls in IGNORED:
            continue
        if cls in ("LSTM", "Bidirectional"):
            if kind != "seq":
                raise reader.refuse(layer, "a recurrent layer needs a sequence [B, T, C] input")
            step, width, sequences = reader.recurrent(layer, width)
            kind = "seq" if sequences else "vec"
        elif cls == "Dense" or (inner is not None and inner.class_name == "Dense" and kind == "seq"):
            step = reader.dense(inner or layer, width)
            width = step.linear.out_features
        elif cls == "Flatten" and kind == "seq":
            step, kind = FlattenStep(), "vec"
            width = width * window
            reader.table.append(f"{layer.name}: Flatten")
        elif cls == "Activation":
            step = _activation_step(reader, layer)
        else:
            raise reader.refuse(layer, "not supported in the sequence head (LSTM, "
                                       "Bidirectional(LSTM), Dense, Flatten, Dropout, Activation)")
        steps.append(step)
    return steps, kind, width

