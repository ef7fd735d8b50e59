"""`fsexport train`: the command-line face of fsexport.train.loop.train."""
from __future__ import annotations

from pathlib import Path

import click

from fsexport.cli import Share, one_line_errors
from fsexport.train.augment import COLOUR_FRAMES
from fsexport.train.loop import TrainConfig, train
from fsexport.variants import VARIANTS
from fsrun.axes import parse_axes
from fsrun.errors import UsageError


@click.command("train")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Folder of videos, each with labels of the same basename: "
                   "VIDEO.truth.funscript (fsrun synth) or VIDEO.funscript.")
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="tiny", show_default=True,
              help="Model variant to train.")
@click.option("--input-size", type=click.IntRange(16), default=None,
              help="Override the variant's input size (build with the same --input-size).")
@click.option("--calibrate-batchnorm/--no-calibrate-batchnorm", default=True, show_default=True,
              help="Random backbone: set BatchNorm statistics from random frames first.")
@click.option("--head-init/--no-head-init", default=True, show_default=True,
              help="Start LSTM forget gates at 1 and the output bias at 0.5.")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoint folder (default: ./checkpoints/VARIANT).")
@click.option("--name", default="checkpoint", show_default=True,
              help="Checkpoint basename: NAME.safetensors + NAME.json.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="Windows per step.")
@click.option("--windows-per-epoch", type=click.IntRange(0), default=0, show_default=True,
              help="Windows drawn per epoch; 0: two per window-length of training frames.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True,
              help="Starting learning rate; halved when validation loss plateaus.")
@click.option("--patience", type=click.IntRange(0), default=2, show_default=True,
              help="Epochs without improvement before the learning rate is cut.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True, help="Share of videos held out for validation.")
@click.option("--unfreeze", is_flag=True, help="Train the backbone too (default: frozen).")
@click.option("--frame-steps", type=click.IntRange(0), default=0, show_default=True,
              help="First train backbone + Dense(256) on single frames this many steps (for a "
                   "backbone without pretrained weights), then the head on the frozen result.")
@click.option("--frame-batch", type=click.IntRange(1), default=64, show_default=True,
              help="Frames per step of --frame-steps.")
@click.option("--frame-places", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Frame stage: also learn where the target is drawn (centre and size), with "
                   "this weight; clips of `fsrun synth` record it, other videos train without.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Change the look of training windows: colour, crop, mirror, blur, noise, "
                   "JPEG; one random draw per window, so its frames change alike.")
@click.option("--augment-copies", type=click.IntRange(0), default=2, show_default=True,
              help="With the feature cache: augmented copies of each training video whose "
                   "features are cached too (each costs one more backbone pass and its memory).")
@click.option("--augment-colour", type=click.Choice(COLOUR_FRAMES), default="all",
              show_default=True,
              help="Frames whose colours augmentation changes (jitter, grey, swapped channels): "
                   "none teaches a tilt (roll) faster; stroke-only spares the frames labelled "
                   "on another axis.")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Let augmentation mirror left-right; turn off when the motion runs sideways "
                   "in the picture.")
@click.option("--no-feature-cache", is_flag=True,
              help="Frozen backbone: run it on every window instead of caching its features.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep cached backbone features on disk here (default: memory only).")
@click.option("--crop", default="full", show_default=True,
              help="Crop before resize: full, sbs-left, sbs-right or X,Y,W,H.")
@click.option("--axes", "axes_text", default="stroke", show_default=True,
              help="Axes the head learns, the stroke first (stroke,roll,...); labels of roll come "
                   "from VIDEO.roll.truth.funscript or a VIDEO.roll.funscript fsrun did not "
                   "write, and a video without them trains the stroke alone (masked).")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Start the encoder from this package's encoder.onnx (same "
                                 "variant).")
@click.option("--blend-with", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A checkpoint fine-tuned from --init-from's package: the "
                                 "encoder starts part of the way from that package's to its.")
@click.option("--blend-share", type=Share(), default=None,
              help="How far towards --blend-with's encoder (0: --init-from's, 1: its; default "
                   "0.5).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run saved in --output.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="CPU threads for torch; 0 keeps its default.")
@one_line_errors
def train_command(data: Path, variant: str, input_size: int | None, calibrate_batchnorm: bool,
                  head_init: bool, output: Path | None, name: str, epochs: int,
                  batch_size: int, windows_per_epoch: int, lr: float, patience: int,
                  val_fraction: float, unfreeze: bool, frame_steps: int, frame_batch: int,
                  frame_places: float, augment: bool, augment_copies: int, flip: bool,
                  augment_colour: str,
                  no_feature_cache: bool, cache_dir: Path | None, crop: str,
                  axes_text: str, init_from: Path | None, blend_with: Path | None,
                  blend_share: float | None, seed: int, resume: bool, threads: int) -> None:
    """Train a model on (video, funscript) pairs; writes NAME.safetensors + NAME.json.

    Build a package from the result with: fsexport build --variant VARIANT --checkpoint
    OUTPUT/NAME.safetensors
    """
    if blend_share is not None and blend_with is None:
        raise UsageError("--blend-share goes with --blend-with (and --init-from)")
    config = TrainConfig(
        data=data, output=output or Path("checkpoints") / variant, variant=variant, name=name,
        input_size=input_size, calibrate_batchnorm=calibrate_batchnorm, head_init=head_init,
        epochs=epochs, batch_size=batch_size, windows_per_epoch=windows_per_epoch,
        learning_rate=lr, plateau_patience=patience, val_fraction=val_fraction,
        unfreeze_backbone=unfreeze, frame_steps=frame_steps, frame_batch=frame_batch,
        frame_places=frame_places,
        augment=augment, augment_copies=augment_copies, flip=flip,
        augment_colour=augment_colour,
        feature_cache=not no_feature_cache, cache_dir=cache_dir,
        crop=crop, axes=parse_axes(axes_text), init_from=init_from, seed=seed, resume=resume,
        blend_with=blend_with, blend_share=0.5 if blend_share is None else blend_share,
        threads=threads)
    result = train(config)
    click.echo(f"best validation MSE {result.best_val_loss:.5f}: {result.checkpoint}")
    size = f" --input-size {input_size}" if input_size else ""
    click.echo(f"next: fsexport build --variant {variant}{size} --checkpoint {result.checkpoint}")
