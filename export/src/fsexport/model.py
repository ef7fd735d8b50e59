"""The funscript model in PyTorch, split the way the runtime runs it.

FrameEncoder: uint8 RGB frames [N, H, W, 3] -> embeddings [N, D]. Cast, resize and normalization
live inside, so any frame size goes in and the GPU does the resizing.
SequenceHead: embeddings [B, T, D] -> positions [B, T] (two bidirectional LSTMs, Dense(T)); a
head of several axes (stroke, roll, ...) gives [B, T, C] from a Dense(T * C).
WindowModel: the composite [B, T, H, W, 3] uint8 -> [B, T], the contract of model-notes.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fsexport.variants import Variant


class FrameEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, variant: Variant, mean: tuple[float, ...],
                 std: tuple[float, ...]):
        super().__init__()
        self.backbone = backbone
        self.input_size = variant.input_size
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add on the resized frame.
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)
        self.feature_shape = self._probe_feature_shape()  # (h, w, C): channels-last, as Keras
        flat = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.fc = nn.Linear(flat, variant.embedding_dim)
        self.dropout = nn.Dropout(variant.dropout)

    @torch.no_grad()
    def _probe_feature_shape(self) -> tuple[int, int, int]:
        was_training = self.backbone.training
        self.backbone.eval()
        probe = torch.zeros(1, 3, self.input_size, self.input_size)
        features = self.backbone.forward_features(probe)
        self.backbone.train(was_training)
        _, c, h, w = features.shape
        return int(h), int(w), int(c)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> normalized float [N, 3, S, S]; Cast comes before Resize."""
        x = frames.to(self.scale.dtype).permute(0, 3, 1, 2)  # TensorRT: uint8 only into a Cast
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=False)
        return x * self.scale + self.shift

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """Flattened backbone features [N, h*w*C] in channels-last order."""
        maps = self.backbone.forward_features(self.preprocess(frames))
        return maps.permute(0, 2, 3, 1).flatten(1)

    def embed_features(self, flat: torch.Tensor) -> torch.Tensor:
        """Dense(D)+ReLU on flattened features; lets training skip a frozen backbone."""
        return self.dropout(F.relu(self.fc(flat)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.features(frames))


class SequenceHead(nn.Module):
    """embeddings [B, T, D] -> positions [B, T], or [B, T, C] for a head of C > 1 axes."""

    def __init__(self, variant: Variant, axes: int = 1):
        super().__init__()
        units = variant.lstm_units
        if 2 * units < variant.window:
            raise ValueError("no layer after the LSTMs may be narrower than the window")
        self.window, self.axes = variant.window, axes
        self.dropout = nn.Dropout(variant.dropout)
        self.lstm1 = nn.LSTM(variant.embedding_dim, units, batch_first=True, bidirectional=True)
        self.lstm2 = nn.LSTM(2 * units, units, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * units, variant.window * axes)

    @property
    def embedding_dim(self) -> int:
        """Width D of the embeddings [B, T, D] the head takes."""
        return self.lstm1.input_size

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = self.dropout(embeddings)
        x, _ = self.lstm1(x)
        x = self.dropout(x)
        _, (h_n, _) = self.lstm2(x)
        # Keras Bidirectional(return_sequences=False): [forward last state, backward last state].
        last = torch.cat([h_n[0], h_n[1]], dim=-1)
        positions = F.relu(self.fc(self.dropout(last)))
        return positions if self.axes == 1 else positions.unflatten(1, (self.window, self.axes))


class WindowModel(nn.Module):
    """Composite: frames [B, T, H, W, 3] uint8 -> positions [B, T]."""

    def __init__(self, encoder: FrameEncoder, head: SequenceHead):
        super().__init__()
        self.encoder = encoder
        self.head = head
        # names of the head's outputs per frame (meta.json "axes"); build sets them from the
        # checkpoint's training record (an imported head gives the stroke alone)
        count = getattr(head, "axes", 1)
        self.axis_names: tuple[str, ...] = ("stroke",) if count == 1 else tuple(
            f"axis{c}" for c in range(count))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[0], frames.shape[1]
        frames = frames.to(self.encoder.scale.dtype)  # TensorRT: uint8 only into a Cast
        embeddings = self.encoder(frames.flatten(0, 1))
        return self.head(embeddings.reshape(b, t, -1))


@dataclass
class BackboneSource:
    pretrained: bool = False  # download timm hub weights (needs network access)
    weights_file: Path | None = None  # local timm backbone weights (safetensors or state dict)


def create_backbone(variant: Variant, source: BackboneSource | None = None) -> tuple[nn.Module, tuple, tuple]:
    """timm backbone without classifier or global pooling, plus its normalization mean/std."""
    import timm

    source = source or BackboneSource()
    kwargs: dict = {"num_classes": 0, "global_pool": "", "exportable": True,
                    **dict(variant.backbone_args)}
    if source.weights_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(source.weights_file)}
    pretrained = source.pretrained or source.weights_file is not None
    backbone = timm.create_model(variant.backbone, pretrained=pretrained, **kwargs)
    cfg = backbone.pretrained_cfg
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return backbone, mean, std


def create_model(variant: Variant, source: BackboneSource | None = None,
                 seed: int | None = 0, axes: int = 1) -> WindowModel:
    """A WindowModel for a variant (a head of `axes` outputs per frame); head weights are random
    until a checkpoint is loaded."""
    if seed is not None:
        torch.manual_seed(seed)
    backbone, mean, std = create_backbone(variant, source)
    encoder = FrameEncoder(backbone, variant, mean, std)
    return WindowModel(encoder, SequenceHead(variant, axes)).eval()


@torch.no_grad()
def calibrate_batchnorm(encoder: FrameEncoder, frames: int = 8, batch: int = 4, seed: int = 0) -> None:
    """Set BatchNorm statistics of an untrained backbone from random frames.

    A randomly initialised deep backbone with identity BatchNorm statistics lets activations grow
    layer after layer (1e4 and more in effv2m/l), where float32 rounding is amplified until fp32
    and fp64 PyTorch disagree in the first digit. Calibrated statistics keep activations at the
    scale of a trained network, so the random-weight packages used for plumbing and benchmarks
    can be verified to the same tolerance as trained ones.
    """
    norms = [m for m in encoder.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    generator = torch.Generator().manual_seed(seed)
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = encoder.backbone.training
    encoder.backbone.train()
    try:
        size = encoder.input_size
        for start in range(0, frames, batch):
            n = min(batch, frames - start)
            images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator)
            encoder.backbone.forward_features(encoder.preprocess(images))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        encoder.backbone.train(was_training)
