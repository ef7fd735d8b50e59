"""Per-frame backbone features for a frozen backbone, computed once and reused every epoch.

With the backbone frozen, its output for a frame never changes, so after the first epoch only
Dense(256) and the head need to run. Features are keyed by the frames' bytes and the backbone's
weights, kept in memory, and optionally saved as .npy files so a resumed or repeated training
run skips the backbone from the first epoch.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from fsexport.model import FrameEncoder
from fsrun.files.atomic import atomic_file
from torch import nn


def backbone_fingerprint(encoder: FrameEncoder) -> str:
    """sha256 over the backbone's tensors and the input size: changes when the weights do."""
    digest = hashlib.sha256(f"input_size={encoder.input_size};".encode())
    for name, tensor in sorted(encoder.backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """features(frames) -> float32 tensor [N, F], computed with the backbone only once."""

    def __init__(self, encoder: FrameEncoder, directory: Path | None = None, batch_size: int = 128):
        self.encoder = encoder
        self.directory = Path(directory) if directory is not None else None
        self.batch_size = batch_size
        self.fingerprint = backbone_fingerprint(encoder)
        self._memory: dict[str, torch.Tensor] = {}
        self.computed = 0  # frames that went through the backbone
        self.reused = 0  # lookups answered without the backbone

    def _key(self, frames: np.ndarray) -> str:
        digest = hashlib.sha256(self.fingerprint.encode())
        digest.update(str(frames.shape).encode())
        digest.update(np.ascontiguousarray(frames).tobytes())
        return digest.hexdigest()

    @torch.no_grad()
    def _compute(self, frames: np.ndarray) -> torch.Tensor:
        was_training = self.encoder.backbone.training
        self.encoder.backbone.eval()
        parts = [self.encoder.features(torch.from_numpy(frames[i:i + self.batch_size]))
                 for i in range(0, len(frames), self.batch_size)]
        self.encoder.backbone.train(was_training)
        self.computed += len(frames)
        return torch.cat(parts).float()

    def features(self, frames: np.ndarray) -> torch.Tensor:
        key = self._key(frames)
        if key in self._memory:
            self.reused += 1
            return self._memory[key]
        path = self.directory / f"{key}.npy" if self.directory is not None else None
        if path is not None and path.is_file():
            result = torch.from_numpy(np.load(path))
            self.reused += 1
        else:
            result = self._compute(frames)
            if path is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                with atomic_file(path) as f:
                    np.save(f, result.numpy())
        self._memory[key] = result
        return result


class FeatureScaler(nn.Module):
    """Standardizes backbone features during training; folded into Dense(256) when saved.

    A frozen, randomly initialized backbone (the tiny variant has no pretrained weights) emits
    features around 1e-3: Dense(256) would barely move under Adam. Training on standardized
    features and folding mean and std into the Dense weights afterwards gives the same function
    with no extra layer in the exported graph.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-12))

    @classmethod
    def fit(cls, features: torch.Tensor) -> FeatureScaler:
        return cls(features.mean(0), features.std(0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    def fold(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense weights that take raw features: W' = W / std, b' = b - W' @ mean."""
        folded = weight / self.std
        return folded, bias - folded @ self.mean

    def unfold(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of fold: Dense weights on standardized features."""
        return weight * self.std, bias + weight @ self.mean
