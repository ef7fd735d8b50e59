"""`python -m benchmarks.experiments COMMAND`: the project's finished experiments, kept runnable.

Each measured one question once (which int8 recipe, which stride, how much the session or the
feature cache saves, how demo recipes generalize) and wrote its answer under
benchmarks/results/<machine>/experiments/ (the index: experiments/README.md there). The
benchmark a user runs is `python -m benchmarks run`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from benchmarks.__main__ import _ints, _names, _per_variant, _size  # noqa: F401 - shared parsers
from benchmarks.experiments.demo_commands import DEMO_COMMANDS
from benchmarks.sysinfo import machine_name
from benchmarks.seeds import seed

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def default_out() -> Path:
    """Where an experiment writes when --out is not given."""
    return RESULTS / machine_name() / "experiments"


@click.group()
def main() -> None:
    """Finished experiments (see benchmarks/results/<machine>/experiments/README.md)."""


@main.command()
@click.option("--package", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Model package to grade [default: the bundled demo model].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
@click.option("--seconds", type=click.FloatRange(5.0), default=20.0, show_default=True,
              help="Length of each held-out clip.")
def stride(package: Path | None, out: Path | None, seconds: float) -> None:
    """Grade strides and postprocessing settings against synthetic ground truth."""
    from benchmarks.experiments.stride_accuracy import (StrideConfig, default_package,  # noqa: PLC0415
                                            measure, write)

    results = measure(StrideConfig(package=package or default_package(), seconds=seconds),
                      log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results):
        click.echo(str(path))


@main.command("train-cache")
@click.option("--variants", default="tiny,effv2s", show_default=True,
              help="Variants trained with and without the feature cache.")
@click.option("--epochs", type=click.IntRange(2), default=3, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
def train_cache(variants: str, epochs: int, out: Path | None) -> None:
    """Training epoch time with and without the frozen backbone's feature cache."""
    from benchmarks.experiments.train_cache import TrainCacheConfig, measure, write  # noqa: PLC0415

    cfg = TrainCacheConfig(variants=tuple(_names(variants)), epochs=epochs)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results):
        click.echo(str(path))


@main.command("roll-augmentation")
@click.option("--package", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="The stroke recipe's package: every setting starts from its "
                                  "encoder.")
@click.option("--steps", type=click.IntRange(1), default=600, show_default=True,
              help="Frame-stage steps per augmentation setting.")
@click.option("--clips", type=click.IntRange(5), default=60, show_default=True,
              help="Tilting randomized clips rendered (a fifth held out).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
def roll_augmentation(package: Path, steps: int, clips: int, out: Path | None) -> None:
    """Frame-level roll r a stroke encoder reaches under each augmentation setting."""
    from benchmarks.experiments.roll_augmentation import (RollAugmentationConfig,  # noqa: PLC0415
                                                          measure, write)

    results = measure(RollAugmentationConfig(package=package, steps=steps, clips=clips),
                      log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results):
        click.echo(str(path))


@main.command("session-startup")
@click.option("--package", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Model package [default: the bundled demo model].")
@click.option("--before-src", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, help="runtime/src of an fsrun from before model sessions "
                                  "(git archive COMMIT runtime/src | tar -x -C DIR).")
@click.option("--clips", type=click.IntRange(2), default=20, show_default=True)
@click.option("--seconds", type=click.FloatRange(0.5), default=2.0, show_default=True)
@click.option("--repeats", type=click.IntRange(1), default=2, show_default=True)
@click.option("--name", default="session_startup", show_default=True,
              help="Base name of the result files.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
def session_startup(package: Path | None, before_src: Path, clips: int, seconds: float,
                    repeats: int, name: str, out: Path | None) -> None:
    """Folder mode's start-up cost per video, before model sessions and with one."""
    from benchmarks.experiments.session_startup import StartupConfig, measure, write  # noqa: PLC0415
    from fsrun.config import demo_model_dir  # noqa: PLC0415

    cfg = StartupConfig(package=package or demo_model_dir(), before_src=before_src,
                        clips=clips, seconds=seconds, repeats=repeats)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results, name):
        click.echo(str(path))


@main.command("int8")
@click.option("--package", "packages", multiple=True, required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Package whose fp32 encoder is quantized (repeatable).")
@click.option("--recipes", default="", help="Comma list of fsexport.quantize recipes, or all "
              "[default: the default recipe].")
@click.option("--calibrate", type=click.Path(path_type=Path, exists=True), default=None,
              help="Videos to calibrate on [default: synthetic clips, as fsexport quantize].")
@click.option("--calibration-frames", type=click.IntRange(4), default=96, show_default=True)
@click.option("--clip-size", default="96x72", show_default=True,
              help="WxH of the held-out clips (the size the graded models were trained at).")
@click.option("--clip-seconds", type=click.FloatRange(2.0), default=8.0, show_default=True)
@click.option("--clips", type=click.IntRange(1), default=6, show_default=True,
              help="Held-out clips (every track kind, several codecs and rates).")
@click.option("--ground-truth/--no-ground-truth", default=None,
              help="Grade fsrun against the truth [default: for trained packages only].")
@click.option("--cosine-frames", type=click.IntRange(4), default=96, show_default=True)
@click.option("--speed-frames", type=click.IntRange(1), default=32, show_default=True)
@click.option("--speed-rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
@click.option("--name", default="int8_configs", show_default=True,
              help="Basename of the JSON and Markdown files.")
def int8(packages, recipes, calibrate, calibration_frames, clip_size, clip_seconds, clips,
         ground_truth, cosine_frames, speed_frames, speed_rounds, out, name) -> None:
    """int8 recipes: encoder speed vs fp32, embedding cosine and ground-truth r, one table."""
    from fsexport.calibration import CalibrationConfig, SynthClips  # noqa: PLC0415
    from fsexport.quantize import DEFAULT_RECIPE, RECIPES  # noqa: PLC0415

    from benchmarks.experiments.int8_configs import HELD_OUT_SEED, Int8BenchConfig, measure, write  # noqa: PLC0415

    chosen = list(RECIPES) if recipes.strip() == "all" else (_names(recipes) or [DEFAULT_RECIPE])
    width, height = _size(clip_size)
    cfg = Int8BenchConfig(
        packages=list(packages), recipes=chosen,
        calibration=CalibrationConfig(videos=calibrate, frames=calibration_frames),
        held_out=SynthClips(count=clips, seconds=clip_seconds, size=(width, height),
                            seed=HELD_OUT_SEED),
        ground_truth=ground_truth, cosine_frames=cosine_frames, speed_frames=speed_frames,
        speed_rounds=speed_rounds)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results, name):
        click.echo(str(path))


@main.command("int8-layers")
@click.option("--package", "packages", multiple=True, required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Package whose fp32 encoder is quantized (repeatable: one plot for all).")
@click.option("--recipe", default=None, help="fsexport.quantize recipe [default: the default].")
@click.option("--frames", type=click.IntRange(1), default=8, show_default=True,
              help="Held-out frames (every tensor of each is held in memory).")
@click.option("--clip-size", default="256x192", show_default=True,
              help="WxH of the held-out clips the frames come from.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
@click.option("--name", default="int8_layers", show_default=True,
              help="Basename of the JSON, Markdown and PNG files.")
def int8_layers(packages, recipe, frames, clip_size, out, name) -> None:
    """Where the int8 encoder's error comes from: fp32 vs int8 at every quantized tensor."""
    from fsexport.calibration import SynthClips  # noqa: PLC0415
    from fsexport.quantize import DEFAULT_RECIPE, get_recipe  # noqa: PLC0415

    from benchmarks.experiments.int8_layers import HELD_OUT_SEED, LayerErrorConfig, measure, write  # noqa: PLC0415

    from fsrun.errors import UsageError  # noqa: PLC0415

    try:
        get_recipe(recipe or DEFAULT_RECIPE)  # an unknown name fails before any work
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--recipe") from None
    cfg = LayerErrorConfig(packages=list(packages), recipe=recipe or DEFAULT_RECIPE,
                           frames=frames, held_out=SynthClips(count=4, seconds=3.0,
                                                              size=_size(clip_size),
                                                              seed=HELD_OUT_SEED))
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results, name):
        click.echo(str(path))


@main.command("int8-isa")
@click.option("--package", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Package with encoder.int8.onnx (fsexport quantize).")
@click.option("--cpu", "cpus", default="Haswell-v4,Nehalem-v2", show_default=True,
              help="QEMU CPU models to emulate (qemu-x86_64 -cpu help).")
@click.option("--frames", type=click.IntRange(1), default=16, show_default=True,
              help="Decoded frames (held-out synthetic clips) run through both encoders.")
@click.option("--clip-size", default="96x72", show_default=True, help="WxH of those clips.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments].")
@click.option("--name", default="int8_no_vnni", show_default=True)
def int8_isa(package, cpus, frames, clip_size, out, name) -> None:
    """The int8 encoder on emulated CPUs without AVX-512/VNNI, against native fp32 and int8."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from benchmarks.experiments.int8_isa import measure, write  # noqa: PLC0415
    from fsexport.calibration import SynthClips, decode_videos, render_synth_clips  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415

    if shutil.which("qemu-x86_64") is None:
        raise click.UsageError("qemu-x86_64 not found: install Debian's qemu-user")
    width, height = _size(clip_size)
    meta = load_package(package).meta
    with tempfile.TemporaryDirectory(prefix="fsrun-int8-isa-clips-") as scratch:
        clips = render_synth_clips(Path(scratch), SynthClips(count=2, seconds=3.0,
                                                             size=(width, height), seed=seed("int8-isa")))
        videos = [clip.video for clip in clips]
        decoded = decode_videos(videos, meta.fps, meta.input_size, keep_full=False)
    pool = np.concatenate([d.resized for d in decoded])
    picks = np.linspace(0, len(pool) - 1, min(frames, len(pool))).round().astype(int)
    results = measure(package, pool[picks], tuple(_names(cpus)),
                      log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out(), results, name):
        click.echo(str(path))


@main.command("import-memory")
@click.option("--work", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Scratch folder: the models (made once, about 290 MB), a clip, caches.")
@click.option("--sizes", default="64,384", show_default=True, help="Model input sizes.")
@click.option("--backbone", default="tf_efficientnetv2_s", show_default=True,
              help="timm backbone of the author-architecture model.")
@click.option("--pythonpath", default=None,
              help="Another checkout's runtime/src to measure (the code as it was).")
@click.option("--label", default="after", show_default=True,
              help="Column name of this run (before, after).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>/experiments/"
                   "import-memory].")
def import_memory(work: Path, sizes: str, backbone: str, pythonpath: str | None, label: str,
                  out: Path | None) -> None:
    """Peak memory and time of `fsrun --model X.onnx` and `fsexport import X.onnx` on the
    author's architecture."""
    from benchmarks.experiments.import_memory import ImportMemoryConfig, measure, write  # noqa: PLC0415

    config = ImportMemoryConfig(work=work, sizes=tuple(_ints(sizes)), backbone=backbone,
                                pythonpath=pythonpath, label=label)
    result = measure(config, log=lambda line: click.echo(line, err=True))
    for path in write(out or default_out() / "import-memory", result):
        click.echo(str(path))


for _command in DEMO_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
