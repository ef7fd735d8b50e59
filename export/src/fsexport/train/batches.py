"""Windows of training data as model inputs, with augmentation where the backbone allows it.

Three modes, as in the training loop:
- frozen backbone with a feature cache: the backbone runs once per frame. Augmentation then
  means augmented copies: each training video is also stored `copies` times with a look drawn
  anew for every segment of it (one draw per segment, every frame of the segment alike), and
  their features are cached too. Windows are drawn from the clean videos and from the copies
  alike and never straddle two segments, so every window is changed in one way only.
- frozen backbone without a cache, or a backbone that trains: every window is augmented as it
  is drawn (one draw per window), then encoded.
Validation windows are never augmented.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import click
import numpy as np
import torch

from fsexport.model import WindowModel
from fsexport.train.augment import Augmenter
from fsexport.train.dataset import DecodedVideo, WindowRef
from fsexport.train.features_cache import FeatureCache, FeatureScaler


@dataclass(frozen=True)
class Piece:
    video: int  # index into the decoded videos
    start: int  # first frame
    stop: int  # one past the last frame
    copy: int  # 0: the frames as decoded; k >= 1: augmented copy k, one draw for the piece


def make_pieces(lengths: list[int], copies: int, segment: int, window: int) -> list[Piece]:
    """Every video whole (copy 0), then each copy cut into segments of `segment` frames; a tail
    shorter than a window joins the segment before it."""
    pieces = [Piece(v, 0, n, 0) for v, n in enumerate(lengths)]
    segment = max(segment, window)
    for copy in range(1, copies + 1):
        for v, n in enumerate(lengths):
            starts = list(range(0, n, segment))
            if len(starts) > 1 and n - starts[-1] < window:
                starts.pop()
            bounds = [*starts, n]
            pieces += [Piece(v, a, b, copy) for a, b in zip(bounds, bounds[1:]) if b - a >= window]
    return pieces


class WindowBatches:
    """Turns window references into (inputs, labels); a reference's video indexes the pieces."""

    def __init__(self, model: WindowModel, videos: list[DecodedVideo], window: int,
                 cache: FeatureCache | None, augmenter: Augmenter | None = None,
                 copies: int = 0, segment: int = 0, progress: bool = False):
        self.model, self.videos, self.window, self.cache = model, videos, window, cache
        self.augmenter, self.progress = augmenter, progress
        copies = copies if cache is not None and augmenter is not None else 0
        self.pieces = make_pieces([len(v) for v in videos], copies, segment or 8 * window, window)
        self.features: list[torch.Tensor] | None = None
        self.scaler: FeatureScaler | None = None  # frozen backbone: standardizes features

    def lengths(self) -> list[int]:
        """Frames per piece, for drawing windows."""
        return [p.stop - p.start for p in self.pieces]

    def prepare(self) -> None:
        """With a cache: features of every piece (the backbone and augmentation run once)."""
        if self.cache is None or self.features is not None:
            return
        features = []
        copies = any(p.copy for p in self.pieces)
        with click.progressbar(self.pieces, label="backbone features" + (
                " (clean + augmented copies)" if copies else ""), file=sys.stderr,
                hidden=not self.progress) as bar:
            for piece in bar:
                video = self.videos[piece.video]
                frames = video.frames[piece.start:piece.stop]
                if piece.copy:
                    frames = self.augmenter.for_labels(video.labels[piece.start:piece.stop])(frames)
                features.append(self.cache.features(frames))
        self.features = features

    def labels(self, refs: list[WindowRef]) -> torch.Tensor:
        rows = []
        for r in refs:
            piece = self.pieces[r.video]
            start = piece.start + r.start
            rows.append(self.videos[piece.video].labels[start:start + self.window])
        return torch.from_numpy(np.stack(rows))

    def _frames(self, ref: WindowRef) -> np.ndarray:
        piece = self.pieces[ref.video]
        start = piece.start + ref.start
        video = self.videos[piece.video]
        frames = video.frames[start:start + self.window]
        if self.augmenter is None:
            return frames
        return self.augmenter.for_labels(video.labels[start:start + self.window])(frames)

    def predict(self, refs: list[WindowRef], train_backbone: bool) -> torch.Tensor:
        b, t = len(refs), self.window
        encoder = self.model.encoder
        if self.features is not None:
            flat = torch.stack([self.features[r.video][r.start:r.start + t] for r in refs])
            embeddings = encoder.embed_features(self._scale(flat.flatten(0, 1)))
        else:
            frames = torch.from_numpy(np.stack([self._frames(r) for r in refs])).flatten(0, 1)
            if train_backbone:
                embeddings = encoder(frames)
            else:
                with torch.no_grad():
                    flat = encoder.features(frames)
                embeddings = encoder.embed_features(self._scale(flat))
        return self.model.head(embeddings.reshape(b, t, -1))

    def _scale(self, flat: torch.Tensor) -> torch.Tensor:
        return self.scaler(flat) if self.scaler is not None else flat

    @torch.no_grad()
    def fit_scaler(self, max_frames: int = 4096, seed: int = 0) -> FeatureScaler:
        """Feature mean and std over the clean training frames (a sample when nothing is
        cached)."""
        if self.features is not None:
            sample = torch.cat([f for f, p in zip(self.features, self.pieces) if not p.copy])
        else:
            frames = np.concatenate([v.frames for v in self.videos])
            pick = np.sort(np.random.default_rng(seed).permutation(len(frames))[:max_frames])
            sample = torch.cat([self.model.encoder.features(torch.from_numpy(frames[pick[i:i + 256]]))
                                for i in range(0, len(pick), 256)])
        self.scaler = FeatureScaler.fit(sample)
        return self.scaler
