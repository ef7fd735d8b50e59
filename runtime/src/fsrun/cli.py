"""The `fsrun` command: `fsrun VIDEO [options]`, plus subcommands (demo, synth, ...).

A bare video path runs the default `run` command, so `fsrun in.mp4` works while `fsrun demo`
still reaches its subcommand; a first argument that names both a subcommand and a file or folder
in the current folder is refused rather than guessed. `fsrun --help` shows the run options with
the subcommands. Errors print one line and exit with the error's code; --debug shows the
traceback instead.
"""
from __future__ import annotations

import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

import fsrun
from fsrun.files.atomic import os_reason
from fsrun.backends import BACKEND_CHOICES, PRECISION_CHOICES
from fsrun.errors import FsError, Interrupted, UsageError, exit_code_of
from fsrun.memory import limit_malloc_arenas
from fsrun.defaults import DEFAULT_MIN_AMPLITUDE, DEFAULT_RDP_EPSILON, DEFAULT_STRIDE
from fsrun.run.pipeline import process_video
from fsrun.run.postprocess import PostprocessOptions
from fsrun.axes import parse_axes
from fsrun.run.request import RESIZE_CHOICES, RunHooks, SessionSpec, VideoRequest
from fsrun.signals import interrupt_guard
from fsrun.tables import load
from fsrun.sources import DECODER_CHOICES

DEFAULT_COMMAND = "run"
# Subcommands other modules provide, imported only when asked for: a missing or broken one
# must not stop `fsrun VIDEO` from working.
LAZY_COMMANDS: dict[str, str] = {
    "demo": "fsrun.demo:demo_command",
    "synth": "fsrun.groundtruth.synth.cli:synth_command",
    "studio": "fsrun.studio.cli:studio_command",
}


class DefaultCommandGroup(click.Group):
    """A group where an unknown first argument is the video of the default command."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None or name not in self.lazy:
            return command
        try:
            return load(self.lazy[name])
        except (ImportError, AttributeError) as exc:
            return _unavailable(name, exc)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `fsrun --help` shows the group; `fsrun VIDEO ...` and `fsrun --opt VIDEO` run.
        if args and args[0] not in ("--help", "-h", "--version"):
            name = args[0]
            if self.get_command(ctx, name) is None:
                args = [DEFAULT_COMMAND, *args]
            elif name != DEFAULT_COMMAND and os.path.lexists(name) and "--" not in args[1:]:
                raise UsageError(f"'{name}' is both the `fsrun {name}` command and ./{name} "
                                 f"here: write `fsrun ./{name}` (or `fsrun run {name}`) for "
                                 f"the path, `fsrun {name} --` for the command")
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "VIDEO|FOLDER [OPTIONS]")
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The run command's options (what `fsrun VIDEO` takes), then the commands."""
        run = self.get_command(ctx, DEFAULT_COMMAND)
        run_ctx = click.Context(run, info_name=ctx.info_name, parent=ctx)
        rows = [record for param in run.get_params(run_ctx)
                if isinstance(param, click.Option) and "--help" not in param.opts
                for record in [param.get_help_record(run_ctx)] if record]
        rows += [record for param in self.get_params(ctx)
                 for record in [param.get_help_record(ctx)] if record]
        with formatter.section("Options"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


def _unavailable(name: str, exc: BaseException) -> click.Command:
    @click.command(name, help=f"(unavailable: {exc})",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise FsError(f"the {name} command is not available in this installation ({exc})")

    return command


@click.group(cls=DefaultCommandGroup, lazy=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(fsrun.__version__, prog_name="fsrun")
def cli() -> None:
    """Write VIDEO.funscript for a video, or for every video under a folder, with a funscript
    model. `fsrun VIDEO` is short for `fsrun run VIDEO`.

    A first argument that names both a command and a file or folder here is refused: write
    ./NAME for the path, or NAME -- for the command.
    """


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Accept 90, 90.5, 1:30 or 1:02:03.5."""
    if value is None:
        return None
    try:
        total = 0.0
        for part in value.split(":"):
            total = total * 60 + float(part)
    except ValueError:
        total = math.nan
    if not math.isfinite(total):  # nan, inf, 1e999: no time a video has
        raise click.BadParameter(f"{value!r} is not a time (seconds or [H:]M:S)")
    return total


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange also lets nan and inf through (no comparison refuses them)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@cli.command(DEFAULT_COMMAND)
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", "-m", type=click.Path(path_type=Path), default=None,
              help="Model package (NAME.fsmodel), or a one-graph .onnx model (float32 [B, 60, S, "
                   "S, 3] 0-255 in, [B, 60] out), cut into a package in the user cache the "
                   "first time. Default: $FSRUN_MODEL, the default set by `fsexport build`, "
                   "then the bundled demo.")
@click.option("--fps", "model_fps", type=FiniteFloatRange(min=1, max=240), default=None,
              help="With a .onnx --model: the frame rate it was trained at [default: 30] (the "
                   "file does not record it).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Funscript to write. Default: VIDEO.funscript next to the video.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True)
@click.option("--decoder", type=click.Choice(DECODER_CHOICES), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto",
              show_default=True, help="Encoder precision; auto = int8 on the CPU backend when "
                                      "the package has it, fp16 on GPU backends, else fp32.")
@click.option("--stride", type=click.IntRange(min=1), default=DEFAULT_STRIDE, show_default=True,
              help="Frames between window starts (1..window). Smaller blends more windows.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames per encoder call.")
@click.option("--crop", default="full", show_default=True,
              help="full, sbs-left, sbs-right (side-by-side VR) or X,Y,W,H in pixels.")
@click.option("--resize", type=click.Choice(RESIZE_CHOICES), default="auto", show_default=True,
              help="Where frames are scaled to the model's input size: source (swscale in the "
                   "decoder), graph (inside the encoder); auto = source on the CPU backend, "
                   "graph on GPU backends.")
@click.option("--start", callback=_seconds, default=None, help="Start time (s or [H:]M:S).")
@click.option("--end", callback=_seconds, default=None, help="End time (s or [H:]M:S).")
@click.option("--raw", is_flag=True, help="One point per sampled frame, no simplification.")
@click.option("--min-amplitude", type=FiniteFloatRange(0, 100), default=DEFAULT_MIN_AMPLITUDE,
              show_default=True,
              help="Peaks and valleys closer than this (0-100) are merged.")
@click.option("--rdp", "rdp_epsilon", type=FiniteFloatRange(0, 100), default=DEFAULT_RDP_EPSILON,
              show_default=True,
              help="Also keep the points that bend a stroke more than this (0-100; 0 = off).")
@click.option("--stretch", type=FiniteFloatRange(min=0, max=49.9), default=None,
              help="Stretch the P..100-P percentile range of positions to 0..100.")
@click.option("--invert", is_flag=True, help="Write 100 - position.")
@click.option("--offset", "offset_ms", type=int, default=0, show_default=True,
              help="Shift all actions by this many ms.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Cache root: embeddings, packages cut from .onnx models, TensorRT engines "
                   "(default: $FSRUN_CACHE_DIR, else the user cache folder).")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU inference threads (0 = automatic).")
@click.option("--device", "device_id", type=click.IntRange(min=0), default=0,
              help="CUDA device number.")
@click.option("--axes", "axes_text", default=None, metavar="LIST",
              help="A model of several axes: the ones to write, e.g. stroke,roll [default: all "
                   "the model gives]; each goes to its own file, VIDEO.funscript for the "
                   "stroke, VIDEO.roll.funscript for the roll, and so on.")
@click.option("--multi-axis-file", is_flag=True,
              help="Write every axis into VIDEO.funscript instead, in the funscript 1.1 form "
                   "(the stroke at the root, the others under \"axes\" by T-code id).")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing funscript.")
@click.option("--quiet", "-q", is_flag=True, help="No notices and no progress bar.")
@click.option("--report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write stage timings, counts, backend and decoder as JSON (for a folder: "
                   "every video's outcome and report in one file).")
@click.option("--ext", "extensions", default=None, metavar="LIST",
              help="Folder mode: video extensions to look for, e.g. mp4,mkv "
                   "(default: common video types).")
@click.option("--explain", is_flag=True,
              help="Show the run plan (model, backend, precision, resize, decoder, and why) "
                   "and exit without processing.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder mode: write the funscripts under this folder, mirroring the tree, "
                   "instead of beside the videos.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="Folder mode: run the videos on Ray actors (pip install 'fsrun[ray]'); "
                   "without ADDRESS $RAY_ADDRESS, the cluster `ray start` runs here, or a "
                   "local Ray for this run. "
                   "See docs/scale.md.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=None,
              help="With --ray: CPUs per worker on nodes without GPUs [default: up to 4, what "
                   "each node has]; GPU nodes run one worker per GPU.")
@click.option("--ray-timeout", type=FiniteFloatRange(min=1), default=180.0, show_default=True,
              help="With --ray: seconds to wait for the workers to start before giving up.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def run_command(explain: bool, extensions: str | None, output_dir: Path | None, ray_address: str | None,
                ray_cpus: int | None, ray_timeout: float, video: Path, model: Path | None, model_fps: float | None,
                output: Path | None, backend: str,
                decoder: str, precision: str, stride: int, batch: int, crop: str, resize: str,
                start: float | None, end: float | None, raw: bool, min_amplitude: float,
                rdp_epsilon: float, stretch: float | None, invert: bool, offset_ms: int,
                no_cache: bool, cache_dir: Path | None, threads: int, device_id: int,
                axes_text: str | None, multi_axis_file: bool,
                force: bool, quiet: bool, report: Path | None, debug: bool) -> None:
    """Write VIDEO.funscript (or --output) from a video file, or for every video under a
    folder (skipping those that have one, unless --force)."""
    ctx = click.get_current_context()
    ctx.meta["fsrun_debug"] = debug

    def log(message: str) -> None:
        click.echo(f"fsrun: {message}", err=True)

    post = PostprocessOptions(raw=raw, min_amplitude=min_amplitude, rdp_epsilon=rdp_epsilon,
                              stretch_percentile=stretch, invert=invert, offset_ms=offset_ms)
    spec = SessionSpec(model=model, model_fps=model_fps, backend=backend, decoder=decoder,
                       precision=precision, resize=resize, threads=threads,
                       device_id=device_id, batch=batch, use_cache=not no_cache,
                       cache_dir=cache_dir)
    request = VideoRequest(video=video, output=output, stride=stride, crop=crop,
                           start=start or 0.0, end=end, postprocess=post, force=force,
                           report=report,
                           axes=parse_axes(axes_text) if axes_text is not None else None,
                           multi_axis_file=multi_axis_file)
    hooks = RunHooks(log=log, quiet=quiet)
    if explain:
        _explain(spec, request)
        return
    limit_malloc_arenas()  # before the decode thread exists: see memory.py
    # SIGINT/SIGTERM stop at a safe point (cache flushed, nothing written): see signals.py.
    with interrupt_guard():
        if video.is_dir():
            from fsrun.folder import parse_extensions, run_folder  # noqa: PLC0415

            hooks = RunHooks(quiet=quiet)  # the folder's lines sum the videos' notices up
            if ray_address is not None:  # Ray is imported only on this path
                from fsrun.scale.ray_folder import run_ray_folder  # noqa: PLC0415

                run_ray_folder(video, spec, request, hooks, parse_extensions(extensions),
                               click.echo, None if quiet else log, ray_address or None,
                               output_dir, ray_cpus, ray_timeout)
                return
            run_folder(video, spec, request, hooks, parse_extensions(extensions), click.echo,
                       None if quiet else log, output_dir)
            return
        if ray_address is not None or output_dir is not None:
            raise UsageError(f"{'--ray' if ray_address is not None else '--output-dir'} is for "
                             "a folder of videos; for one video use --output")
        result = process_video(spec, request, hooks)
    if not quiet:
        r = result.report
        windows = f"{r['windows']} window{'' if r['windows'] == 1 else 's'}"
        written = str(result.output) if len(result.outputs) < 2 else ", ".join(
            f"{path} ({result.axis_actions[axis]} actions)"
            for axis, path in result.outputs.items())
        actions = f"{result.actions} actions from " if len(result.outputs) < 2 else ""
        log(f"wrote {written} ({actions}{r['frames']} frames, {windows}, {r['wall']:.1f} s)")


def _explain(spec: SessionSpec, request: VideoRequest) -> None:
    """Print the plan; for a video file also the decoder it would get and its cache entry.
    Starts no backend."""
    from fsrun.model.package import load_package  # noqa: PLC0415
    from fsrun.run.plan import make_plan  # noqa: PLC0415

    plan = make_plan(spec)
    click.echo(plan.explain())
    video = Path(request.video)
    model_axes = load_package(plan.model, verify=False).meta.axis_names
    if len(model_axes) > 1:  # a model of several axes: which are written, to which files
        from fsrun.run.axis_outputs import chosen_axes, output_paths  # noqa: PLC0415

        axes = chosen_axes(request.axes, model_axes, request.multi_axis_file)
        click.echo(f"axes:      {', '.join(axes)} (the model gives {', '.join(model_axes)})")
        if video.is_file():
            files = output_paths(video, request.output, axes, request.multi_axis_file)
            click.echo(f"writes:    {', '.join(str(p) for p in files.values())}")
    if video.is_file():
        decoder, notes = plan.decoder_for(video)
        click.echo(f"{video.name}: decoder {decoder}" + "".join(f"; {note}" for note in notes))
        click.echo(f"cache:     {_cache_entry(spec, request, plan) if spec.use_cache else 'off'}")


def _cache_entry(spec: SessionSpec, config: VideoRequest, plan: Any) -> str:
    """The embedding cache entry a run of config would use, and what it holds."""
    from fsrun.crop import parse_crop  # noqa: PLC0415
    from fsrun.files.embedding_cache import CacheKey, describe_entry, entry_folder  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415
    from fsrun.sources import probe, resolve_crop  # noqa: PLC0415

    package = load_package(plan.model, verify=False)
    info = probe(config.video)
    crop_box = resolve_crop(config.video, parse_crop(config.crop), info)
    key = CacheKey.for_video(config.video, package.model_hash, plan.precision, crop_box,
                             package.meta.fps, config.start, plan.resize)
    folder = entry_folder(key, spec.cache_dir)
    return f"{folder} ({describe_entry(folder)})"


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit code (0, or the FsError's code; 2 for usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="fsrun", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("fsrun: error: interrupted", err=True)
        return Interrupted.exit_code
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - every error: one line, its exit code
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        if debug and not isinstance(exc, KeyboardInterrupt):
            traceback.print_exc()
        click.echo(f"fsrun: error: {_one_line(exc, debug)}", err=True)
        return exit_code_of(exc)
    return 0


def _one_line(exc: BaseException, debug: bool) -> str:
    """What the error line says: an fsrun error's message, a disk error's path and reason."""
    if isinstance(exc, FsError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError):  # a full, read-only or failing disk the code did not expect
        return (f"{exc.filename}: " if exc.filename else "") + os_reason(exc)
    return f"{type(exc).__name__}: {exc}" + ("" if debug else " (run with --debug for details)")


if __name__ == "__main__":
    sys.exit(main())
