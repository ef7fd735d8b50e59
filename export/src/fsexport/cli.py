"""`fsexport`: thin command line over build, TensorRT and training functions."""
from __future__ import annotations

import functools
import math
import sys
import traceback
from pathlib import Path
from typing import Callable

import click
from fsrun.errors import FsError, MissingDependencyError
from fsrun.tables import load

from fsexport.extras import TORCH_EXTRA, require_torch

# Commands that live in modules importing PyTorch: name -> ("module:attribute", short help).
# They are imported when run, never for `fsexport --help`, which stays quick.
LAZY_COMMANDS = {
    "train": ("fsexport.train.cli:train_command",
              "Train the head (and with --frame-steps the encoder) on videos with labels."),
}


class Share(click.FloatRange):
    """A float in [0, 1]; click's FloatRange alone lets NaN through (every comparison fails)."""

    def __init__(self) -> None:
        super().__init__(0, 1)

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"must lie in [0, 1], got {value}", param, ctx)
        return number


def one_line_errors(func: Callable) -> Callable:
    """FsError -> one line on stderr and its exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        debug = kwargs.pop("debug", False)
        try:
            return func(*args, **kwargs)
        except FsError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"fsexport: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("fsexport: interrupted", err=True)
            sys.exit(130)

    return click.option("--debug", is_flag=True, help="Show tracebacks.")(wrapper)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            try:
                return load(LAZY_COMMANDS[name][0])
            except ImportError as exc:
                return _needs_torch(name, exc)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, the lazy ones from their table entry (nothing imported)."""
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _needs_torch(name: str, exc: ImportError) -> click.Command:
    """A stand-in for a command whose module cannot be imported: says what to install."""

    @click.command(name, context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})
    def command() -> None:
        click.echo(f"fsexport: error: `fsexport {name}` needs PyTorch, timm and torchvision "
                   f"({exc}); install them with: pip install '{TORCH_EXTRA}'", err=True)
        sys.exit(MissingDependencyError.exit_code)

    return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="fsexport")
def main() -> None:
    """Build funscript video models into verified ONNX/TensorRT packages for fsrun."""


@main.command()
@click.option("--variant", default="effv2s", show_default=True,
              help="Model variant: tiny, effv2s, effv2m, effv2l.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder to write the package into (default: current folder), or the "
                   "package itself when it ends in .fsmodel.")
@click.option("--name", default=None, help="Package directory name (default: VARIANT.fsmodel).")
@click.option("--force", is_flag=True, help="Replace an existing package.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Trained weights: .safetensors or a torch state dict (loaded weights-only).")
@click.option("--pretrained", is_flag=True, help="Download timm's pretrained backbone weights.")
@click.option("--backbone-weights", type=click.Path(path_type=Path), default=None,
              help="Local timm backbone weights file.")
@click.option("--input-size", type=click.IntRange(32, 2048), default=None,
              help="Override the variant's input size.")
@click.option("--window", type=click.IntRange(1, 1024), default=None,
              help="Override the window length T.")
@click.option("--fps", type=click.FloatRange(1, 240), default=None, help="Override the model fps.")
@click.option("--no-fp16", is_flag=True, help="Skip the *.fp16.onnx graphs.")
@click.option("--no-composite", is_flag=True,
              help="Skip model.onnx, the one-graph model (fsrun runs encoder + head); exporting "
              "and checking it is most of the build time of the large variants.")
@click.option("--no-default", is_flag=True, help="Do not make this fsrun's default model.")
@click.option("--trt", is_flag=True, help="Also build TensorRT engines (needs TensorRT and a GPU).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for untrained weights.")
@click.option("--int8", is_flag=True,
              help="Also write encoder.int8.onnx for CPU backends (see `fsexport quantize`).")
@click.option("--calibrate", type=click.Path(path_type=Path, exists=True), default=None,
              help="With --int8: videos to calibrate on (default: rendered synthetic clips).")
@one_line_errors
def build(variant: str, output: Path | None, name: str | None, force: bool,
          checkpoint: Path | None, pretrained: bool, backbone_weights: Path | None,
          input_size: int | None, window: int | None, fps: float | None, no_fp16: bool,
          no_composite: bool, no_default: bool, trt: bool, seed: int, int8: bool,
          calibrate: Path | None) -> None:
    """Build a model package (ONNX graphs, meta.json) and verify it against PyTorch."""
    require_torch("fsexport build")
    from fsexport.build import BuildConfig, build_package

    quantize = None
    if int8:
        from fsexport.quantize import QuantizeConfig, calibration_config  # noqa: PLC0415

        quantize = QuantizeConfig(calibration=calibration_config(calibrate))
    elif calibrate is not None:
        raise click.UsageError("--calibrate needs --int8")
    config = BuildConfig(variant=variant, output=output, name=name, force=force,
                         checkpoint=checkpoint, pretrained=pretrained,
                         backbone_weights=backbone_weights, input_size=input_size,
                         window=window, fps=fps, fp16=not no_fp16,
                         composite=not no_composite, set_default=not no_default,
                         seed=seed, int8=quantize)
    result = build_package(config)
    _print_parity(result.meta.parity)
    if "int8" in result.meta.quantization:
        click.echo(describe_drift(result.meta.quantization["int8"]["drift_vs_fp32"]))
    click.echo(f"built   {result.path} in {sum(result.timings.values()):.1f} s")
    if trt:
        _build_engines(result.path)


@main.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder to write the package into (default: current folder).")
@click.option("--name", default=None, help="Package directory name (default: SOURCE.fsmodel).")
@click.option("--force", is_flag=True, help="Replace an existing package.")
@click.option("--fps", type=click.FloatRange(1, 240), default=30.0, show_default=True,
              help="Frame rate the model was trained at (model files do not record it).")
@click.option("--split-at", default=None,
              help="ONNX: tensor holding one embedding per frame (default: found automatically).")
@click.option("--check-keras", is_flag=True,
              help="Keras: also run the original file in TensorFlow and compare (runs the file's "
                   "Keras code: only for files you trust).")
@click.option("--tf-python", default=None,
              help="Python with TensorFlow for --check-keras (default: this one).")
@click.option("--no-fp16", is_flag=True, help="Skip the *.fp16.onnx graphs.")
@click.option("--no-default", is_flag=True, help="Do not make this fsrun's default model.")
@one_line_errors
def import_command(source: Path, output: Path | None, name: str | None, force: bool, fps: float,
                   split_at: str | None, check_keras: bool, tf_python: str | None, no_fp16: bool,
                   no_default: bool) -> None:
    """Import a creator's Keras (.h5, .keras) or ONNX model as a verified package."""
    from fsexport.importers.config import ImportConfig
    from fsexport.importers.doors import import_model

    config = ImportConfig(source=source, output=output, name=name, force=force, fps=fps,
                          fp16=not no_fp16, set_default=not no_default, split_at=split_at,
                          check_keras=check_keras, tf_python=tf_python)
    result = import_model(config)
    _print_parity(result.meta.parity)
    click.echo(f"imported {source} -> {result.path} ({result.meta.provenance.get('door')}) "
               f"in {sum(result.timings.values()):.1f} s")


@main.command("stack")
@click.argument("parts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder to write the package into (default: current folder), or the "
                   "package itself when it ends in .fsmodel.")
@click.option("--name", default=None,
              help="Package directory name (default: the parts' names joined by +).")
@click.option("--axes", default=None,
              help="Axes to keep, the stroke first (default: every axis of every part); each "
                   "comes from the first part that has it.")
@click.option("--force", is_flag=True, help="Replace an existing package.")
@one_line_errors
def stack_command(parts: tuple[Path, ...], output: Path | None, name: str | None,
                  axes: str | None, force: bool) -> None:
    """Stack packages side by side: one package whose every axis comes from the first part
    that has it (the stroke of one model, the roll of another), each part's encoder run on
    every frame."""
    from fsrun.axes import parse_axes
    from fsexport.build_config import PACKAGE_SUFFIX, package_dir
    from fsexport.stack import StackConfig, stack_packages, stack_parts

    target = package_dir(output, name, "+".join(p.name.removesuffix(PACKAGE_SUFFIX)
                                                for p in parts) + PACKAGE_SUFFIX)
    meta = stack_packages(StackConfig(parts=parts, output=target, force=force,
                                      axes=parse_axes(axes) if axes else None),
                          log=click.echo)
    taken = "; ".join(f"{', '.join(record['axes'])} from {part}"
                      for part, record in zip(parts, stack_parts(meta)))
    click.echo(f"stacked {target}: {taken}")


def _print_parity(parity: dict) -> None:
    for file_name, diff in parity.get("max_abs_diff", {}).items():
        shown = "not run" if diff is None else f"{diff:.2e}"
        click.echo(f"parity  {file_name:20s} max abs diff {shown}")


def _build_engines(package: Path) -> None:
    from fsexport.trt.engine_build import build_engines

    for engine in build_engines(package):
        click.echo(f"engine  {engine}")


@main.command()
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--calibrate", type=click.Path(path_type=Path, exists=True), default=None,
              help="Folder of videos (or one video) to calibrate on, decoded as fsrun decodes "
                   "them. Default: synthetic clips rendered with fsrun.groundtruth.synth.")
@click.option("--frames", type=click.IntRange(4), default=None,
              help="Calibration frames, spread over the videos [default: 96].")
@click.option("--recipe", default=None,
              help="Quantization recipe (fsexport.quantize.RECIPES) [default: the measured "
                   "default].")
@click.option("--force", is_flag=True, help="Replace an existing encoder.int8.onnx.")
@one_line_errors
def quantize(package: Path, calibrate: Path | None, frames: int | None, recipe: str | None,
             force: bool) -> None:
    """Add an int8 encoder for CPU backends (ONNX Runtime static quantization) to PACKAGE."""
    from fsexport.quantize import (  # noqa: PLC0415
        DEFAULT_RECIPE,
        QuantizeConfig,
        calibration_config,
        quantize_package,
    )

    cfg = QuantizeConfig(recipe=recipe or DEFAULT_RECIPE, force=force,
                         calibration=calibration_config(calibrate, frames))
    record = quantize_package(package, cfg)
    click.echo(describe_drift(record["drift_vs_fp32"]))


def describe_drift(drift: dict) -> str:
    """The int8 encoder's drift against fp32 in words: positions first (what a script shows),
    then the embeddings' cosine, which alone can look alarming."""
    cosine = drift["embedding_cosine_source"]
    return (f"drift   int8 vs fp32 on {cosine['frames']} calibration frames: positions differ by "
            f"{100 * drift['position_mean_abs_diff']:.1f} on average, "
            f"{100 * drift['position_max_abs_diff']:.1f} at most (0-100 scale, what the script "
            f"shows); embedding cosine mean {cosine['mean']:.3f}, min {cosine['min']:.3f} (a "
            "frame whose embedding is almost all zero in one precision scores near 0 even when "
            "its position agrees; judge by the positions)")


@main.command("trt")
@click.argument("package", type=click.Path(path_type=Path))
@one_line_errors
def trt_command(package: Path) -> None:
    """Build TensorRT engines for an existing package on this machine's GPU."""
    _build_engines(package)


@main.command("check-trt")
@click.argument("package", type=click.Path(path_type=Path))
@one_line_errors
def check_trt(package: Path) -> None:
    """Check statically that TensorRT's ONNX parser supports every op and dtype."""
    from fsexport.trt.static_check import check_package

    findings = check_package(package)
    for finding in findings:
        click.echo(str(finding))
    errors = [f for f in findings if getattr(f, "severity", "error") == "error"]
    if errors:
        click.echo(f"check-trt: {len(errors)} problem(s) TensorRT would reject", err=True)
        sys.exit(1)
    click.echo(f"check-trt: {package}: every graph is TensorRT-compatible (static check; "
               "TensorRT itself did not run)")


if __name__ == "__main__":
    main()
