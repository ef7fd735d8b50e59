"""Train a WindowModel on (video, funscript) pairs: MSE, Adam, learning rate cut on plateau.

The best weights (lowest validation loss) are written as NAME.safetensors with NAME.json beside
them (variant, sizes, seed, losses), which `fsexport build --checkpoint` reads. The last epoch's
weights and the optimizer state are kept too, so `--resume` continues where a run stopped.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch
import torch.nn.functional as F
from fsexport.model import WindowModel, calibrate_batchnorm, create_model
from fsexport.train.augment import AugmentConfig, Augmenter
from fsexport.train.batches import WindowBatches
from fsexport.train.dataset import (DecodedVideo, WindowRef, decode_pair, find_pairs, fixed_windows,
                                    random_windows, split_by_video)
from fsexport.train.features_cache import FeatureCache, FeatureScaler
from fsexport.train.frame_stage import FrameStageResult, axis_r, masked_mse, train_frames
from fsexport.train.blend import blend_encoder
from fsexport.train.warm_start import load_package_encoder, restore_batchnorm
from fsrun.axes import AXES, SINGLE, STROKE, parse_axes
from fsexport.variants import Variant, get_variant
from fsrun.files.atomic import atomic_file, write_atomic
from fsrun.errors import UsageError
from fsrun.groundtruth.metrics import pearson_r
from fsrun.model.package import finite_json
from safetensors.torch import load_file, save


@dataclass
class TrainConfig:
    data: Path  # folder of videos with VIDEO.truth.funscript or VIDEO.funscript labels
    output: Path  # folder for the checkpoint, its JSON config and the resume state
    variant: str = "tiny"  # row of the variant table
    input_size: int | None = None  # override the variant's input size (build with the same)
    calibrate_batchnorm: bool = True  # random backbone: BatchNorm statistics from random frames
    head_init: bool = True  # forget-gate bias 1 and output bias 0.5 before the first step
    name: str = "checkpoint"  # checkpoint basename: NAME.safetensors + NAME.json
    epochs: int = 10  # epochs to run (in total, when resuming)
    batch_size: int = 8  # windows per optimizer step
    windows_per_epoch: int = 0  # windows drawn per epoch; 0: two per window-length of frames
    learning_rate: float = 1e-3  # Adam's starting rate
    plateau_patience: int = 2  # epochs without improvement before the rate is cut
    plateau_factor: float = 0.5  # rate multiplier on a plateau
    val_fraction: float = 0.2  # share of videos (not windows) held out for validation
    unfreeze_backbone: bool = False  # train the backbone too (frozen, as the author trains)
    frame_steps: int = 0  # first train backbone + Dense(D) on single frames this many steps
    frame_batch: int = 64  # frames per step of that frame stage
    frame_lr: float = 3e-3  # Adam's starting rate in the frame stage (cosine decay to 0)
    frame_backbone_scale: float = 1.0  # frame stage: the backbone's rate as a share of frame_lr
    # (0 freezes it: only Dense(D) learns)
    frame_group: int = 16  # frame stage: frames that share one augmentation draw
    frame_places: float = 0.0  # frame stage: weight of learning where a synthetic clip's target
    # is drawn (centre, size) beside its position; 0 learns the position alone
    augment: bool = True  # change the look of training windows (one draw per window)
    augment_copies: int = 2  # with the feature cache: augmented copies of every training video
    augment_segment: int = 0  # frames per draw in those copies; 0: eight windows
    flip: bool = True  # augmentation may mirror left-right (off when motion runs sideways)
    augment_colour: str = "all"  # frames whose colours augmentation changes (jitter, grey,
    # swaps): all, none, or stroke-only (not frames labelled on another axis)
    feature_cache: bool = True  # frozen backbone: compute per-frame features once
    cache_dir: Path | None = None  # where cached features are kept on disk (None: memory only)
    crop: str = "full"  # crop applied before resize: full, sbs-left, sbs-right, X,Y,W,H
    seed: int = 0  # model init, split and window sampling
    axes: tuple[str, ...] = ("stroke",)  # the head's outputs per frame, the stroke first;
    # labels of the others come from VIDEO.AXIS.truth.funscript or VIDEO.AXIS.funscript
    init_from: Path | None = None  # start the encoder from this package's encoder.onnx
    blend_with: Path | None = None  # a checkpoint fine-tuned from init_from: the encoder starts
    # blend_share of the way from init_from's to its (fsexport.train.blend)
    blend_share: float = 0.5  # 0: init_from's encoder, 1: blend_with's
    resume: bool = False  # continue from NAME.last.safetensors and NAME.state.pt
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    progress: bool = True  # show a progress bar with the running loss


@dataclass
class TrainResult:
    checkpoint: Path  # best weights (safetensors)
    config_path: Path  # JSON beside the checkpoint
    best_val_loss: float  # lowest validation MSE (train MSE when nothing is held out)
    history: list[dict] = field(default_factory=list)  # per epoch: losses, r, lr, seconds
    model: WindowModel | None = None  # the model with the best weights loaded
    prepare_seconds: float = 0.0  # one-time backbone pass (feature cache, scaler) before epoch 1
    frame_stage: FrameStageResult | None = None  # the frame stage, when it ran


def sample_frames(videos: list[DecodedVideo], count: int = 512, seed: int = 0) -> np.ndarray:
    """count frames drawn across the videos (uint8 [count, S, S, 3]), without stacking them all."""
    rng = np.random.default_rng([seed, 5])
    lengths = np.array([len(v) for v in videos])
    picks = rng.choice(len(videos), size=count, p=lengths / lengths.sum())
    return np.stack([videos[v].frames[int(rng.integers(0, lengths[v]))] for v in picks])


def _paths(config: TrainConfig) -> dict[str, Path]:
    out = Path(config.output)
    return {"best": out / f"{config.name}.safetensors", "json": out / f"{config.name}.json",
            "last": out / f"{config.name}.last.safetensors", "state": out / f"{config.name}.state.pt"}


@torch.no_grad()
def init_head(model: WindowModel) -> None:
    """Start the head where it learns fast: LSTMs remember (forget-gate bias 1) and the final
    ReLU starts at mid-range (bias 0.5), so no output begins in its zero-gradient region."""
    for lstm in (model.head.lstm1, model.head.lstm2):
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_ih"):
                units = bias.numel() // 4
                bias[units:2 * units] = 1.0  # gate order: input, forget, cell, output
    model.head.fc.bias.fill_(0.5)


def export_state(model: WindowModel, scaler: FeatureScaler | None) -> dict[str, torch.Tensor]:
    """The WindowModel state dict as `fsexport build` loads it: scaler folded into Dense(256)."""
    state = dict(model.state_dict())
    if scaler is not None:
        fc = model.encoder.fc
        state["encoder.fc.weight"], state["encoder.fc.bias"] = scaler.fold(fc.weight.detach(),
                                                                           fc.bias.detach())
    return state


def _load_exported(model: WindowModel, path: Path, scaler: FeatureScaler | None) -> None:
    """Load saved weights; with a scaler, Dense(256) goes back to standardized inputs."""
    state = load_file(str(path))
    if scaler is not None:
        state["encoder.fc.weight"], state["encoder.fc.bias"] = scaler.unfold(
            state["encoder.fc.weight"], state["encoder.fc.bias"])
    model.load_state_dict(state)


def _set_modes(model: WindowModel, training: bool, train_backbone: bool) -> None:
    model.train(training)
    model.encoder.backbone.train(training and train_backbone)  # frozen BN keeps its statistics
    for p in model.encoder.backbone.parameters():
        p.requires_grad_(train_backbone)


@torch.no_grad()
def evaluate(batches: WindowBatches, refs: list[WindowRef],
             batch_size: int) -> tuple[float, tuple[float, ...]]:
    """(MSE over known labels, Pearson r of each axis) over fixed windows."""
    preds, labels = [], []
    for i in range(0, len(refs), batch_size):
        chunk = refs[i:i + batch_size]
        preds.append(batches.predict(chunk, train_backbone=False))
        labels.append(batches.labels(chunk))
    pred, label = torch.cat(preds), torch.cat(labels)
    if label.ndim == 2:  # one axis: as it always was
        return (float(F.mse_loss(pred, label)),
                (pearson_r(pred.flatten().numpy(), label.flatten().numpy()),))
    return float(masked_mse(pred, label)), axis_r(pred.numpy(), label.numpy())


def _load_videos(pairs, variant: Variant, crop: str, label: str, echo) -> list[DecodedVideo]:
    videos = []
    for pair in pairs:
        video = decode_pair(pair, variant.fps, variant.input_size, crop)
        if len(video) < variant.window:
            echo(f"skipping {pair.video.name}: {len(video)} frames, shorter than the window")
            continue
        videos.append(video)
    if pairs and not videos:
        raise UsageError(f"no {label} video is at least {variant.window} frames long")
    return videos


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    write_atomic(path, save({k: v.detach().contiguous() for k, v in tensors.items()}))


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(finite_json(data), indent=2, default=str, allow_nan=False)
                 + "\n")


def train(config: TrainConfig, echo: Callable[[str], None] = click.echo) -> TrainResult:
    """Train, checkpoint every epoch, and return the best weights."""
    if config.epochs < 1 or config.batch_size < 1:
        raise UsageError("epochs and batch size must be at least 1")
    if not 0.0 <= config.blend_share <= 1.0:  # NaN too
        raise UsageError(f"the blend share must lie in [0, 1], got {config.blend_share}")
    if config.blend_with is not None and config.init_from is None:
        raise UsageError("a blend goes from the encoder of --init-from to --blend-with's: "
                         "give both")
    if config.threads:
        torch.set_num_threads(config.threads)
    variant = get_variant(config.variant).with_overrides(input_size=config.input_size)
    paths = _paths(config)
    Path(config.output).mkdir(parents=True, exist_ok=True)
    axes = parse_axes(config.axes)
    if axes[0] != STROKE:
        raise UsageError(f"the stroke comes first among the axes, got {','.join(axes)}")
    train_pairs, val_pairs = split_by_video(find_pairs(config.data, axes), config.val_fraction,
                                            config.seed)
    echo(f"{len(train_pairs)} training and {len(val_pairs)} validation videos")
    train_videos = _load_videos(train_pairs, variant, config.crop, "training", echo)
    val_videos = _load_videos(val_pairs, variant, config.crop, "validation", echo)

    model = create_model(variant, seed=config.seed, axes=len(axes))
    if config.calibrate_batchnorm and config.init_from is None:
        # Identity statistics leave a random backbone's features near 1e-3 and poorly spread;
        # calibrated ones separate the target's place better. The checkpoint carries them.
        calibrate_batchnorm(model.encoder, seed=config.seed)
    if config.init_from is not None and not config.resume:
        load_package_encoder(model.encoder, config.init_from)
        frames = sample_frames(train_videos)
        restore_batchnorm(model.encoder, frames)
        echo(f"encoder from {config.init_from}")
        if config.blend_with is not None:
            blend_encoder(model.encoder, config.blend_with, config.blend_share, frames)
            echo(f"encoder blended {config.blend_share:g} of the way to {config.blend_with}")
    if config.head_init:
        init_head(model)
    # a mirror turns roll and sway into their opposites: no flip while such an axis trains
    augment = AugmentConfig(flip=config.flip and not any(AXES[a].mirrored for a in axes),
                            colour=config.augment_colour)
    frame_stage, frame_info = None, None
    if config.resume:
        if paths["last"].is_file():  # a trained backbone (frame stage, unfreezing) makes the
            model.load_state_dict(load_file(str(paths["last"])))  # features: load it first
    elif config.frame_steps:
        frame_stage = train_frames(model.encoder, train_videos, val_videos, config.frame_steps,
                                   config.frame_batch, config.frame_lr, config.seed,
                                   config.progress,
                                   Augmenter(augment, [config.seed, 1]) if config.augment else None,
                                   config.frame_group, config.frame_places,
                                   warm=config.init_from is not None,
                                   backbone_scale=config.frame_backbone_scale)
        place = (f", val centre error {frame_stage.val_place_error:.3f}"
                 if np.isfinite(frame_stage.val_place_error) else "")
        echo(f"frame stage: {frame_stage.steps} steps, train loss {frame_stage.train_loss:.5f}, "
             f"frame-level val r {frame_stage.val_r:.3f}{place}, {frame_stage.seconds:.1f}s")
        frame_info = frame_stage.describe()
    use_cache = config.feature_cache and not config.unfreeze_backbone
    cache = FeatureCache(model.encoder, config.cache_dir) if use_cache else None
    train_batches = WindowBatches(
        model, train_videos, variant.window, cache,
        Augmenter(augment, [config.seed, 2]) if config.augment else None,
        config.augment_copies, config.augment_segment, config.progress)
    val_batches = WindowBatches(model, val_videos, variant.window, cache)
    val_refs = fixed_windows([len(v) for v in val_videos], variant.window, variant.window // 2)
    per_epoch = config.windows_per_epoch or max(
        config.batch_size, 2 * sum(len(v) for v in train_videos) // variant.window)

    _set_modes(model, True, config.unfreeze_backbone)
    started = time.perf_counter()
    scaler = None
    if not config.unfreeze_backbone:
        train_batches.prepare()  # with augmented copies: their look is drawn here, once
        scaler = train_batches.fit_scaler(seed=config.seed)
        val_batches.scaler = scaler
        if frame_stage is not None or config.init_from is not None:
            # keep the trained (or loaded) Dense(D): the same function on scaled inputs
            with torch.no_grad():
                fc = model.encoder.fc
                weight, bias = scaler.unfold(fc.weight, fc.bias)
                fc.weight.copy_(weight)
                fc.bias.copy_(bias)
    prepare_seconds = time.perf_counter() - started
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.plateau_factor, patience=config.plateau_patience)
    history: list[dict] = []
    best_val, start_epoch = float("inf"), 0
    if config.resume:
        if not paths["state"].is_file() or not paths["last"].is_file():
            raise UsageError(f"{config.output}: nothing to resume ({paths['state'].name} missing)")
        state = torch.load(paths["state"], map_location="cpu", weights_only=True)
        if scaler is not None:
            scaler = FeatureScaler(state["scaler_mean"], state["scaler_std"])
            train_batches.scaler = val_batches.scaler = scaler
        _load_exported(model, paths["last"], scaler)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_val = int(state["epoch"]), float(state["best_val"])
        previous = json.loads(paths["json"].read_text(encoding="utf-8"))
        history = previous.get("history", [])
        frame_info = previous.get("frame_stage")
        echo(f"resuming after epoch {start_epoch}")

    rng = np.random.default_rng([config.seed, start_epoch])
    torch.manual_seed(config.seed + start_epoch)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        _set_modes(model, True, config.unfreeze_backbone)
        train_batches.prepare()
        refs = random_windows(train_batches.lengths(), variant.window, per_epoch, rng)
        steps = [refs[i:i + config.batch_size] for i in range(0, len(refs), config.batch_size)]
        total, seen = 0.0, 0
        with click.progressbar(steps, label=f"epoch {epoch + 1}/{config.epochs}",
                               show_pos=True, hidden=not config.progress, file=sys.stderr,
                               item_show_func=lambda _: f"loss {total / max(seen, 1):.4f}") as bar:
            for chunk in bar:
                loss = masked_mse(train_batches.predict(chunk, config.unfreeze_backbone),
                                  train_batches.labels(chunk))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(chunk)
                seen += len(chunk)
        train_loss = total / max(seen, 1)
        _set_modes(model, False, config.unfreeze_backbone)
        val_batches.prepare()
        val_loss, val_rs = evaluate(val_batches, val_refs, 4 * config.batch_size) if val_refs \
            else (train_loss, (float("nan"),))
        scheduler.step(val_loss)
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 6),
                        "val_loss": round(val_loss, 6), "val_r": round(val_rs[0], 4),
                        **({"val_r_axes": [round(r, 4) for r in val_rs]} if len(axes) > 1
                           else {}),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2)})
        each = "" if len(axes) == 1 else " (" + ", ".join(
            f"{a} {r:.3f}" for a, r in zip(axes, val_rs)) + ")"
        echo(f"epoch {epoch + 1}: train MSE {train_loss:.5f}, val MSE {val_loss:.5f}, "
             f"val r {val_rs[0]:.3f}{each}, {seconds:.1f}s")
        if val_loss < best_val:
            best_val = val_loss
            _save_atomic(export_state(model, scaler), paths["best"])
        _save_atomic(export_state(model, scaler), paths["last"])
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "epoch": epoch + 1, "best_val": best_val}
        if scaler is not None:
            state.update(scaler_mean=scaler.mean, scaler_std=scaler.std)
        with atomic_file(paths["state"]) as f:
            torch.save(state, f)
        _write_json(paths["json"], _describe(config, variant, best_val, history, train_videos,
                                             val_videos, frame_info))

    if not paths["best"].is_file():
        raise UsageError(f"{config.output}: no checkpoint written (no epochs ran)")
    model.load_state_dict(load_file(str(paths["best"])))  # folded: the model as exported
    model.eval()
    return TrainResult(paths["best"], paths["json"], best_val, history, model, prepare_seconds,
                       frame_stage)


def _describe(config: TrainConfig, variant: Variant, best_val: float, history: list[dict],
              train_videos: list[DecodedVideo], val_videos: list[DecodedVideo],
              frame_info: dict | None = None) -> dict:
    """The JSON beside the checkpoint; `fsexport build` copies it into meta.json's provenance."""
    # Folder names only: the JSON travels into meta.json of every package built from it.
    options = {k: (Path(v).name if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {
        "variant": variant.name, "backbone": variant.backbone, "input_size": variant.input_size,
        **({} if tuple(config.axes) == SINGLE else {"axes": list(config.axes)}),
        "window": variant.window, "fps": variant.fps, "seed": config.seed,
        "epochs": len(history), "val_loss": best_val,
        "train_videos": len(train_videos), "val_videos": len(val_videos),
        "frames": sum(len(v) for v in train_videos),
        "options": options, "history": history,
        "frame_stage": frame_info,
    }
