"""Frame stage: train the backbone and Dense(D) on single frames before the sequence head.

The model's author trains the head on a frozen ImageNet backbone. Where no pretrained weights
exist (the tiny variant, or an offline machine), a frozen random backbone leaves the head little
to work with. This stage gives the encoder the task first: backbone + Dense(D) + a throw-away
linear probe regress each frame's own position, on batches of single frames drawn across all
training videos. It costs one backbone pass per frame instead of sixty per window, so the
encoder learns in a fraction of the time that end-to-end window training needs. Afterwards
the backbone is frozen again (unless unfreezing is asked) and the head trains on cached features.

With augmentation, each batch of single frames is changed in groups (one draw per group of
frames, which come from unrelated videos), so the encoder learns where the target is under
many looks; validation frames stay as decoded.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import click
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsexport.model import FrameEncoder
from fsexport.train.augment import Augmenter
from fsexport.train.dataset import DecodedVideo
from fsrun.metrics import pearson_r


@dataclass
class FrameStageResult:
    steps: int  # optimizer steps taken
    train_loss: float  # mean MSE over the last quarter of the steps
    val_r: float  # Pearson r of the probe on every validation frame (nan without validation)
    seconds: float  # wall time of the stage

    def describe(self) -> dict:
        return {"steps": self.steps, "train_loss": round(self.train_loss, 6),
                "val_r": round(self.val_r, 4), "seconds": round(self.seconds, 2)}


def _stack(videos: list[DecodedVideo]) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([v.frames for v in videos]),
            np.concatenate([v.labels for v in videos]).astype(np.float32))


@torch.no_grad()
def _probe_r(encoder: FrameEncoder, probe: nn.Linear, frames: np.ndarray, labels: np.ndarray,
             batch_size: int = 256) -> float:
    was_training = encoder.training
    encoder.eval()
    preds = [probe(encoder(torch.from_numpy(frames[i:i + batch_size]))).squeeze(1)
             for i in range(0, len(frames), batch_size)]
    encoder.train(was_training)
    return pearson_r(torch.cat(preds).numpy(), labels)


def train_frames(encoder: FrameEncoder, train_videos: list[DecodedVideo],
                 val_videos: list[DecodedVideo], steps: int, batch_size: int,
                 learning_rate: float, seed: int, progress: bool = True,
                 augmenter: Augmenter | None = None, group: int = 16) -> FrameStageResult:
    """Train backbone + Dense(D) to predict each frame's position; leaves the encoder in eval."""
    started = time.perf_counter()
    frames, labels = _stack(train_videos)
    generator = torch.Generator().manual_seed(seed)
    probe = nn.Linear(encoder.fc.out_features, 1)
    with torch.no_grad():  # start the probe inside the label range, like the head's output bias
        probe.weight.normal_(0.0, 0.01, generator=generator)
        probe.bias.fill_(0.5)
    params = [*encoder.parameters(), *probe.parameters()]
    for p in encoder.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    # cosine decay: no validation signal is needed to schedule a fixed number of steps
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    rng = np.random.default_rng([seed, 17])
    encoder.train()
    losses: list[float] = []
    with click.progressbar(range(steps), label="frame stage", show_pos=True, hidden=not progress,
                           file=sys.stderr,
                           item_show_func=lambda _: f"loss {np.mean(losses[-20:]):.4f}"
                           if losses else "") as bar:
        for _ in bar:
            pick = rng.integers(0, len(frames), batch_size)
            batch = frames[pick]
            if augmenter is not None:
                batch = augmenter.groups(batch, group)
            pred = probe(encoder(torch.from_numpy(batch))).squeeze(1)
            loss = F.mse_loss(pred, torch.from_numpy(labels[pick]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    encoder.eval()
    val_r = float("nan")
    if val_videos:
        val_r = _probe_r(encoder, probe, *_stack(val_videos))
    tail = losses[-max(len(losses) // 4, 1):] if losses else [float("nan")]
    return FrameStageResult(steps, float(np.mean(tail)), val_r, time.perf_counter() - started)
