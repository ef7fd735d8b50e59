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

Where a clip says where its target is drawn (clips of `fsrun synth`), a second throw-away probe
can regress that place too (centre x and y, size) with weight `places_weight`. The position
alone says only how high the target is; the place also asks which thing in the picture it is,
so distractors and background count as errors. Neither probe is part of the built model.
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
from fsrun.groundtruth.metrics import pearson_r


@dataclass
class FrameStageResult:
    steps: int  # optimizer steps taken
    train_loss: float  # mean MSE over the last quarter of the steps
    val_r: float  # Pearson r of the probe on every validation frame (nan without validation)
    seconds: float  # wall time of the stage
    val_place_error: float = float("nan")  # mean distance of predicted to true target centre
    # on validation frames, as a fraction of the picture (nan without places)
    val_r_axes: tuple[float, ...] = ()  # with several axes: the probe's r on each (the stroke's
    # is val_r)

    def describe(self) -> dict:
        described = {"steps": self.steps, "train_loss": round(self.train_loss, 6),
                     "val_r": round(self.val_r, 4), "seconds": round(self.seconds, 2),
                     "val_place_error": round(self.val_place_error, 4)}
        if self.val_r_axes:
            described["val_r_axes"] = [round(r, 4) for r in self.val_r_axes]
        return described


def masked_mse(prediction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MSE over the labels that are known (an axis a video has no label for is nan)."""
    known = torch.isfinite(labels)
    if bool(known.all()):
        return F.mse_loss(prediction, labels)
    if not bool(known.any()):
        return prediction.sum() * 0.0
    return F.mse_loss(prediction[known], labels[known])


def axis_r(prediction: np.ndarray, labels: np.ndarray) -> tuple[float, ...]:
    """Pearson r of each axis (the last dimension) over its known labels."""
    prediction = prediction.reshape(-1, labels.shape[-1]) if labels.ndim > 1 else prediction
    if labels.ndim == 1:
        return (pearson_r(prediction.ravel(), labels),)
    flat = labels.reshape(-1, labels.shape[-1])
    return tuple(pearson_r(prediction[np.isfinite(flat[:, c]), c], flat[np.isfinite(flat[:, c]), c])
                 if np.isfinite(flat[:, c]).sum() > 1 else float("nan")
                 for c in range(flat.shape[1]))


PLACE_SCALE = np.array([1.0, 1.0, 4.0], np.float32)  # size x4: about the range of the centre


def _stack(videos: list[DecodedVideo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames, labels and target places (nan rows where a video has none)."""
    places = [v.places if v.places is not None else np.full((len(v), 3), np.nan, np.float32)
              for v in videos]
    return (np.concatenate([v.frames for v in videos]),
            np.concatenate([v.labels for v in videos]).astype(np.float32),
            np.concatenate(places).astype(np.float32))


def _positions(probe: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """The position probe's answer: [N] for one axis, [N, C] for several."""
    out = probe(features)
    return out.squeeze(1) if out.shape[1] == 1 else out


@torch.no_grad()
def _probe_scores(encoder: FrameEncoder, probe: nn.Linear, place_probe: nn.Linear | None,
                  frames: np.ndarray, labels: np.ndarray, places: np.ndarray,
                  batch_size: int = 256) -> tuple[tuple[float, ...], float]:
    """(Pearson r of the position probe per axis, mean centre error of the place probe or nan)."""
    was_training = encoder.training
    encoder.eval()
    features = torch.cat([encoder(torch.from_numpy(frames[i:i + batch_size]))
                          for i in range(0, len(frames), batch_size)])
    encoder.train(was_training)
    r = axis_r(_positions(probe, features).numpy(), labels)
    known = np.isfinite(places).all(1)
    if place_probe is None or not known.any():
        return r, float("nan")
    centre = place_probe(features[torch.from_numpy(known)]).numpy()[:, :2]
    return r, float(np.linalg.norm(centre - places[known, :2], axis=1).mean())


@torch.no_grad()
def fit_probe(encoder: FrameEncoder, probe: nn.Linear, frames: np.ndarray, labels: np.ndarray,
              rng: np.random.Generator, count: int = 4096, ridge: float = 1e-2) -> None:
    """Set the probe to the ridge regression of the labels (each axis over its known ones) on
    the encoder's features of up to `count` training frames."""
    pick = np.sort(rng.permutation(len(frames))[:count])
    was_training = encoder.training
    encoder.eval()
    features = torch.cat([encoder(torch.from_numpy(frames[pick[i:i + 256]]))
                          for i in range(0, len(pick), 256)]).double()
    encoder.train(was_training)
    design = torch.cat([features, torch.ones(len(features), 1, dtype=torch.float64)], 1)
    targets = torch.from_numpy(labels[pick].reshape(len(pick), -1)).double()
    for c in range(targets.shape[1]):
        known = torch.isfinite(targets[:, c])
        if int(known.sum()) < 2:
            continue
        x, y = design[known], targets[known, c]
        gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
        solution = torch.linalg.solve(gram, x.T @ y)
        probe.weight[c] = solution[:-1].float()
        probe.bias[c] = solution[-1].float()


def train_frames(encoder: FrameEncoder, train_videos: list[DecodedVideo],
                 val_videos: list[DecodedVideo], steps: int, batch_size: int,
                 learning_rate: float, seed: int, progress: bool = True,
                 augmenter: Augmenter | None = None, group: int = 16,
                 places_weight: float = 0.0, warm: bool = False,
                 backbone_scale: float = 1.0) -> FrameStageResult:
    """Train backbone + Dense(D) to predict each frame's position on every axis (and, with
    places_weight, where its target is drawn); leaves the encoder in eval. warm: the encoder
    comes trained (a package, warm_start.py): the probe starts fitted to its features, so the
    first steps do not undo what it knows. The backbone learns at backbone_scale times the rate
    of Dense(D) and the probes (0: frozen)."""
    started = time.perf_counter()
    frames, labels, places = _stack(train_videos)
    generator = torch.Generator().manual_seed(seed)
    probe = nn.Linear(encoder.fc.out_features, labels.shape[1] if labels.ndim > 1 else 1)
    with torch.no_grad():  # start the probe inside the label range, like the head's output bias
        probe.weight.normal_(0.0, 0.01, generator=generator)
        probe.bias.fill_(0.5)
    params = [*encoder.parameters(), *probe.parameters()]  # the backbone's are split off below
    place_probe = None
    if places_weight > 0 and np.isfinite(places).all(1).any():
        place_probe = nn.Linear(encoder.fc.out_features, 3)
        with torch.no_grad():  # drawn after the position probe: runs without places repeat
            place_probe.weight.normal_(0.0, 0.01, generator=generator)
            place_probe.bias.fill_(0.5)
        params += list(place_probe.parameters())
    scale = torch.from_numpy(PLACE_SCALE)
    for p in encoder.parameters():
        p.requires_grad_(True)
    backbone = {id(p) for p in encoder.backbone.parameters()}
    groups = [{"params": [p for p in params if id(p) not in backbone]}]
    if backbone_scale > 0:  # the backbone at its own (smaller) rate, or frozen at 0
        groups.append({"params": list(encoder.backbone.parameters()),
                       "lr": learning_rate * backbone_scale})
    else:
        for p in encoder.backbone.parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, lr=learning_rate)
    # cosine decay: no validation signal is needed to schedule a fixed number of steps
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    rng = np.random.default_rng([seed, 17])
    encoder.train()
    if warm:
        fit_probe(encoder, probe, frames, labels, rng)
    losses: list[float] = []
    with click.progressbar(range(steps), label="frame stage", show_pos=True, hidden=not progress,
                           file=sys.stderr,
                           item_show_func=lambda _: f"loss {np.mean(losses[-20:]):.4f}"
                           if losses else "") as bar:
        for _ in bar:
            pick = rng.integers(0, len(frames), batch_size)
            batch, where = frames[pick], places[pick]
            if augmenter is not None and place_probe is not None:
                batch, where = augmenter.groups(batch, group, where, labels[pick])
            elif augmenter is not None:
                batch = augmenter.groups(batch, group, labels=labels[pick])
            features = encoder(torch.from_numpy(batch))
            loss = masked_mse(_positions(probe, features), torch.from_numpy(labels[pick]))
            known = torch.from_numpy(np.isfinite(where).all(1))
            if place_probe is not None and bool(known.any()):
                target = torch.from_numpy(where)[known] * scale
                loss = loss + places_weight * F.mse_loss(place_probe(features[known]), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    encoder.eval()
    val_r, place_error = (float("nan"),), float("nan")
    if val_videos:
        val_r, place_error = _probe_scores(encoder, probe, place_probe, *_stack(val_videos))
    tail = losses[-max(len(losses) // 4, 1):] if losses else [float("nan")]
    return FrameStageResult(steps, float(np.mean(tail)), val_r[0], time.perf_counter() - started,
                            place_error, val_r if len(val_r) > 1 else ())
