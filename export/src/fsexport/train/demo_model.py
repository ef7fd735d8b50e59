"""Rebuild the demo model that ships inside fsrun: `python -m fsexport.train.demo_model`.

Renders synthetic clips with fixed seeds (every codec and frame rate), trains the tiny variant
(a frame stage teaches its random backbone the target first, then the head trains on the frozen
backbone's cached features), builds encoder.onnx + head.onnx (fp32 only, to stay a few MB) into
runtime/src/fsrun/demo/demo.fsmodel, and grades it on held-out clips at every rate and codec.
The model tracks the synthetic target only; it knows nothing about real videos.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from fsrun import config as user_config
from fsrun.funscript import read_actions
from fsrun.metrics import compare
from fsrun.synth.cli import ALL_FPS, write_clips
from fsrun.synth.encode import CODECS

HELD_OUT_SEED = 900_000  # held-out clips use seeds from here; training uses 0..count-1


@dataclass
class DemoRecipe:
    clips: int = 96  # training + validation clips
    seconds: float = 20.0  # length of each clip
    size: tuple[int, int] = (96, 72)  # WxH of the rendered clips
    frame_steps: int = 1500  # frame stage: steps of 64 single frames for backbone + Dense(256)
    epochs: int = 40  # head epochs; the best validation epoch is kept
    windows_per_epoch: int = 960  # 60 steps of 16 windows
    batch_size: int = 16  # windows per step
    learning_rate: float = 3e-3  # Adam, halved on plateau
    seed: int = 0  # everything random derives from this
    calibrate_batchnorm: bool = True  # BatchNorm statistics from random frames before training
    head_init: bool = True  # LSTM forget-gate bias 1 and output bias 0.5 before the first step


def grade(package: Path, folder: Path, seconds: float = 12.0, size: tuple[int, int] = (96, 72),
          stride: int | None = None) -> list[dict]:
    """Agreement of the package with the truth on one held-out clip per rate and codec."""
    from fsrun.pipeline import DEFAULT_STRIDE, RunConfig, process_video  # noqa: PLC0415

    rows = []
    rates = [*ALL_FPS, "vfr"]
    for i, (fps, codec) in enumerate((f, c) for f in rates for c in CODECS):
        clip = write_clips(folder / f"{fps}_{codec}", 1, seconds, [fps], [codec],
                           HELD_OUT_SEED + i, size)[0]
        truth = clip.truth
        started = time.perf_counter()
        result = process_video(RunConfig(video=clip.video, model=package, force=True, quiet=True,
                                         stride=stride or DEFAULT_STRIDE, use_cache=False))
        agreement = compare(result.pts_ms, 100.0 * result.positions, *read_actions(truth))
        rows.append({"fps": fps, "codec": codec, "r": round(agreement.pearson_r, 4),
                     "lag_ms": agreement.lag_ms, "mae": round(agreement.mean_abs_error, 2),
                     "seconds": round(time.perf_counter() - started, 2)})
    return rows


@click.command()
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for demo.fsmodel (default: fsrun's bundled demo folder).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep clips and checkpoints here (default: a temporary folder).")
@click.option("--epochs", type=click.IntRange(1), default=DemoRecipe.epochs, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
def main(output: Path | None, work: Path | None, epochs: int, threads: int) -> None:
    """Render, train, build and grade the bundled demo model (fixed seeds)."""
    from fsexport.build import BuildConfig, build_package  # noqa: PLC0415
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415

    recipe = DemoRecipe(epochs=epochs)
    target = output or user_config.demo_model_dir().parent
    with tempfile.TemporaryDirectory(prefix="fsrun-demo-build-") as scratch:
        root = Path(work or scratch)
        data = root / "data"
        if not data.is_dir():
            write_clips(data, recipe.clips, recipe.seconds, list(ALL_FPS) + ["vfr"],
                        list(CODECS), recipe.seed, recipe.size, progress=True)
        result = train(TrainConfig(
            data=data, output=root / "checkpoints", variant="tiny", epochs=recipe.epochs,
            batch_size=recipe.batch_size, windows_per_epoch=recipe.windows_per_epoch,
            learning_rate=recipe.learning_rate, seed=recipe.seed, frame_steps=recipe.frame_steps,
            calibrate_batchnorm=recipe.calibrate_batchnorm, head_init=recipe.head_init,
            threads=threads,
            cache_dir=root / "features"))
        built = build_package(BuildConfig(variant="tiny", output=target, name="demo.fsmodel",
                                          force=True, checkpoint=result.checkpoint,
                                          set_default=False, fp16=False, composite=False))
        rows = grade(built.path, root / "held_out")
    click.echo(json.dumps(rows, indent=1))
    worst = min(rows, key=lambda row: row["r"])
    click.echo(f"demo model: {built.path}; worst held-out r {worst['r']} "
               f"({worst['fps']} fps, {worst['codec']})")


if __name__ == "__main__":
    main()
