"""`python -m benchmarks run ...`: measure, then write results.json, report.md and plots."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from benchmarks.demo_commands import DEMO_COMMANDS
from benchmarks.encoder_throughput import ThroughputConfig
from benchmarks.runner import BenchConfig, run_all
from benchmarks.stages import StageConfig
from benchmarks.sysinfo import machine_name
from benchmarks.videos import ClipParams

HERE = Path(__file__).resolve().parent


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _per_variant(text: str, cast: type) -> dict:
    """'tiny=256,effv2s=32' -> {'tiny': 256, 'effv2s': 32}."""
    out = {}
    for item in _names(text):
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected VARIANT=VALUE, got {item!r}")
        out[name.strip()] = cast(value)
    return out


def resolve_packages(packages: tuple[Path, ...], variants: str, packages_dir: Path,
                     build_missing: bool) -> list[Path]:
    """--package paths, then VARIANT.fsmodel under --packages-dir for each --variants name."""
    found = [Path(p) for p in packages]
    for variant in _names(variants):
        path = packages_dir / f"{variant}.fsmodel"
        if not path.is_dir():
            if not build_missing:
                raise click.UsageError(f"{path} does not exist; build it with `fsexport build "
                                       f"--variant {variant} -o {packages_dir} --no-default` "
                                       "or pass --build-missing")
            from fsexport.build import BuildConfig, build_package  # noqa: PLC0415

            click.echo(f"building {path} ...", err=True)
            build_package(BuildConfig(variant=variant, output=packages_dir, set_default=False))
        found.append(path)
    if not found:
        raise click.UsageError("nothing to measure: pass --package PATH or --variants LIST")
    return found


@click.group()
def main() -> None:
    """fsrun benchmarks: encoder throughput, stage breakdown, baseline, memory."""


@main.command()
@click.option("--package", "packages", multiple=True, type=click.Path(path_type=Path),
              help="Model package to measure (repeatable).")
@click.option("--variants", default="", help="Comma list of variants found in --packages-dir.")
@click.option("--packages-dir", type=click.Path(path_type=Path), default=Path("packages"),
              show_default=True, help="Folder holding VARIANT.fsmodel packages.")
@click.option("--build-missing", is_flag=True,
              help="Build packages --variants names that are missing.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--clips-dir", type=click.Path(path_type=Path), default=HERE / ".clips",
              show_default=True, help="Where synthetic clips are rendered and reused.")
@click.option("--backends", default="",
              help="Comma list (cpu,cuda,tensorrt,trt-native); default: all available.")
@click.option("--batch-sizes", default="1,4,16", show_default=True, help="Encoder batch sizes.")
@click.option("--repeats", default=3, show_default=True, help="Timed repeats per encoder point.")
@click.option("--warmup", default=1, show_default=True, help="Untimed calls before timing.")
@click.option("--throughput-frames", default="",
              help="Frames per repeat per variant, e.g. tiny=512,effv2l=16.")
@click.option("--stage-frames", default="",
              help="Frames the encoder-only stage passes time, per variant.")
@click.option("--stage-repeats", default=3, show_default=True,
              help="Passes per decode stage (median kept).")
@click.option("--e2e-seconds", default="",
              help="End-to-end clip seconds per variant, e.g. tiny=30,effv2s=20.")
@click.option("--seconds", default=10.0, show_default=True,
              help="Clip seconds for variants not in --e2e-seconds.")
@click.option("--size", default="1280x720", show_default=True, help="Clip WIDTHxHEIGHT.")
@click.option("--fps", default=30, show_default=True, help="Clip frame rate.")
@click.option("--strides", default="60,30", show_default=True,
              help="Strides for fsrun vs baseline.")
@click.option("--baseline-variants", default="tiny,effv2s", show_default=True,
              help="Variants that also run the author's baseline.")
@click.option("--e2e-repeats", default=1, show_default=True,
              help="Alternating fsrun/baseline rounds.")
@click.option("--rss-package", type=click.Path(path_type=Path), default=None,
              help="Package for the short vs long memory check [default: the first].")
@click.option("--rss-seconds", default=6.0, show_default=True,  # 0 skips the check
              help="Short clip for the memory check.")
@click.option("--rss-factor", default=10, show_default=True,
              help="Long clip = this many times the short.")
@click.option("--spin-variants", default="tiny", show_default=True,
              help="Variants whose CPU runs compare ONNX Runtime spin-waiting on and off.")
@click.option("--graph-resize-variants", default="tiny,effv2s", show_default=True,
              help="Variants whose CPU runs also measure fsrun --resize graph (the default on "
                   "the CPU is --resize source).")
@click.option("--spin-rounds", default=3, show_default=True, help="Alternating runs per setting.")
@click.option("--threads", default=0, show_default=True, help="ONNX Runtime CPU threads (0 = all).")
@click.option("--torch-eager/--no-torch-eager", default=True, show_default=True,
              help="On a GPU, also time PyTorch eager fp16.")
@click.option("--append", is_flag=True,
              help="Add to the results.json in --out (e.g. variants built later).")
@click.option("--notes", default="", help="A paragraph added to the report (e.g. machine sharing).")
def run(packages, variants, packages_dir, build_missing, out, clips_dir, backends, batch_sizes,
        repeats, warmup, throughput_frames, stage_frames, stage_repeats, e2e_seconds, seconds,
        size, fps, strides, baseline_variants, e2e_repeats, rss_package, rss_seconds,
        rss_factor, spin_variants, graph_resize_variants, spin_rounds, threads, torch_eager,
        append, notes) -> None:
    """Measure every package on every available backend and write the report."""
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"--size must be WIDTHxHEIGHT, got {size!r}") from None
    cfg = BenchConfig(
        packages=resolve_packages(packages, variants, packages_dir, build_missing),
        out=out or HERE / "results" / machine_name(), clips_dir=clips_dir,
        backends=_names(backends) or None,
        throughput=ThroughputConfig(batch_sizes=_ints(batch_sizes), repeats=repeats,
                                    warmup=warmup),
        throughput_frames=_per_variant(throughput_frames, int),
        stage=StageConfig(repeats=stage_repeats), stage_frames=_per_variant(stage_frames, int),
        clip=ClipParams(width=width, height=height, fps=fps, seconds=seconds),
        e2e_seconds=_per_variant(e2e_seconds, float), strides=_ints(strides),
        baseline_variants=tuple(_names(baseline_variants)), e2e_repeats=e2e_repeats,
        rss_package=rss_package, rss_seconds=rss_seconds, rss_factor=rss_factor,
        spin_variants=tuple(_names(spin_variants)), spin_rounds=spin_rounds,
        graph_resize_variants=tuple(_names(graph_resize_variants)),
        torch_eager=torch_eager, threads=threads, append=append)
    results = run_all(cfg, log=lambda line: click.echo(line, err=True))
    if notes:
        from benchmarks.runner import write_results  # noqa: PLC0415

        results["notes"] = notes
        write_results(cfg.out, results)
    click.echo(str(cfg.out / "report.md"))
    for target in results["targets"]:
        verdict = {True: "met", False: "MISSED", None: "unmeasured"}[target["met"]]
        measured = "-" if target["measured"] is None else f"{target['measured']:.3f}"
        click.echo(f"{verdict:10s} {target['name']}: {measured} (goal {target['target']})")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--notes-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="Markdown file whose text becomes the report's closing notes.")
def report(folder: Path, notes_file: Path | None) -> None:
    """Re-render report.md and the plots from FOLDER/results.json (no measuring)."""
    import json  # noqa: PLC0415

    from benchmarks.runner import write_results  # noqa: PLC0415
    from benchmarks.targets import evaluate_targets  # noqa: PLC0415

    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    old = results.get("e2e") or []
    if old:  # re-summarize the runs with this version's summary (the model rate from the old one)
        from benchmarks.runner import summarize_e2e  # noqa: PLC0415

        first = old[0]
        fps = first["frames"] / first["realtime_factor"] / first["wall_median"]
        results["e2e"] = summarize_e2e(results["e2e_runs"], round(fps, 3))
    if notes_file is not None:
        results["notes"] = notes_file.read_text(encoding="utf-8").strip()
    results["targets"] = evaluate_targets(results)
    write_results(folder, results)
    click.echo(str(folder / "report.md"))


@main.command()
@click.option("--package", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Model package to grade [default: the bundled demo model].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--seconds", type=click.FloatRange(5.0), default=20.0, show_default=True,
              help="Length of each held-out clip.")
def stride(package: Path | None, out: Path | None, seconds: float) -> None:
    """Grade strides and postprocessing settings against synthetic ground truth."""
    from benchmarks.stride_accuracy import (StrideConfig, default_package,  # noqa: PLC0415
                                            measure, write)

    results = measure(StrideConfig(package=package or default_package(), seconds=seconds),
                      log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results):
        click.echo(str(path))


@main.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--clips-dir", type=click.Path(path_type=Path), default=HERE / ".clips",
              show_default=True, help="Where the clips are encoded and reused.")
@click.option("--compare-sizes", default="640x360,1920x1080", show_default=True,
              help="Frame sizes of the NVDEC vs PyAV comparison clips.")
@click.option("--compare-seconds", default=2.0, show_default=True)
@click.option("--size", default="1920x1080", show_default=True, help="Throughput clip size.")
@click.option("--seconds", default=10.0, show_default=True, help="Throughput clip length.")
@click.option("--min-seconds", default=4.0, show_default=True,
              help="Each decoding process loops over the clip for at least this long.")
@click.option("--parallel", default="1,2,4,7,8", show_default=True,
              help="NVDEC decoders at once (one process each).")
@click.option("--pyav-parallel", default="1", show_default=True,
              help="PyAV sources at once, for reference.")
@click.option("--require-nvdec", is_flag=True,
              help="Fail when NVDEC is unavailable instead of reporting its rows as skipped.")
def nvdec(out, clips_dir, compare_sizes, compare_seconds, size, seconds, min_seconds, parallel,
          pyav_parallel, require_nvdec) -> None:
    """NVDEC vs PyAV frames and timestamps (H.264, HEVC, VP9), decode throughput, memory."""
    from benchmarks.nvdec import NvdecConfig, measure, write  # noqa: PLC0415

    cfg = NvdecConfig(clips_dir=clips_dir,
                      compare_sizes=tuple(_size(s) for s in _names(compare_sizes)),
                      compare_seconds=compare_seconds, throughput_size=_size(size),
                      throughput_seconds=seconds, min_seconds=min_seconds,
                      parallel=_ints(parallel), pyav_parallel=_ints(pyav_parallel),
                      require_nvdec=require_nvdec)
    try:
        results = measure(cfg, log=lambda line: click.echo(line, err=True))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    for path in write(out or HERE / "results" / machine_name(), results):
        click.echo(str(path))


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


@main.command("train-cache")
@click.option("--variants", default="tiny,effv2s", show_default=True,
              help="Variants trained with and without the feature cache.")
@click.option("--epochs", type=click.IntRange(2), default=3, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>].")
def train_cache(variants: str, epochs: int, out: Path | None) -> None:
    """Training epoch time with and without the frozen backbone's feature cache."""
    from benchmarks.train_cache import TrainCacheConfig, measure, write  # noqa: PLC0415

    cfg = TrainCacheConfig(variants=tuple(_names(variants)), epochs=epochs)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results):
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
              help="Results folder [default: benchmarks/results/<machine>].")
def session_startup(package: Path | None, before_src: Path, clips: int, seconds: float,
                    repeats: int, name: str, out: Path | None) -> None:
    """Folder mode's start-up cost per video, before model sessions and with one."""
    from benchmarks.session_startup import StartupConfig, measure, write  # noqa: PLC0415
    from fsrun.config import demo_model_dir  # noqa: PLC0415

    cfg = StartupConfig(package=package or demo_model_dir(), before_src=before_src,
                        clips=clips, seconds=seconds, repeats=repeats)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results, name):
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
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--name", default="int8_configs", show_default=True,
              help="Basename of the JSON and Markdown files.")
def int8(packages, recipes, calibrate, calibration_frames, clip_size, clip_seconds, clips,
         ground_truth, cosine_frames, speed_frames, speed_rounds, out, name) -> None:
    """int8 recipes: encoder speed vs fp32, embedding cosine and ground-truth r, one table."""
    from fsexport.calibration import CalibrationConfig, SynthClips  # noqa: PLC0415
    from fsexport.quantize import DEFAULT_RECIPE, RECIPES  # noqa: PLC0415

    from benchmarks.int8_configs import HELD_OUT_SEED, Int8BenchConfig, measure, write  # noqa: PLC0415

    chosen = list(RECIPES) if recipes.strip() == "all" else (_names(recipes) or [DEFAULT_RECIPE])
    try:
        width, height = (int(v) for v in clip_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"--clip-size must be WIDTHxHEIGHT, got {clip_size!r}") from None
    cfg = Int8BenchConfig(
        packages=list(packages), recipes=chosen,
        calibration=CalibrationConfig(videos=calibrate, frames=calibration_frames),
        held_out=SynthClips(count=clips, seconds=clip_seconds, size=(width, height),
                            seed=HELD_OUT_SEED),
        ground_truth=ground_truth, cosine_frames=cosine_frames, speed_frames=speed_frames,
        speed_rounds=speed_rounds)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results, name):
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
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--name", default="int8_layers", show_default=True,
              help="Basename of the JSON, Markdown and PNG files.")
def int8_layers(packages, recipe, frames, clip_size, out, name) -> None:
    """Where the int8 encoder's error comes from: fp32 vs int8 at every quantized tensor."""
    from fsexport.calibration import SynthClips  # noqa: PLC0415
    from fsexport.quantize import DEFAULT_RECIPE, get_recipe  # noqa: PLC0415

    from benchmarks.int8_layers import HELD_OUT_SEED, LayerErrorConfig, measure, write  # noqa: PLC0415

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
    for path in write(out or HERE / "results" / machine_name(), results, name):
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
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--name", default="int8_no_vnni", show_default=True)
def int8_isa(package, cpus, frames, clip_size, out, name) -> None:
    """The int8 encoder on emulated CPUs without AVX-512/VNNI, against native fp32 and int8."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from benchmarks.int8_isa import measure, write  # noqa: PLC0415
    from fsexport.calibration import SynthClips, decode_videos, render_synth_clips  # noqa: PLC0415
    from fsrun.package import load_package  # noqa: PLC0415

    if shutil.which("qemu-x86_64") is None:
        raise click.UsageError("qemu-x86_64 not found: install Debian's qemu-user")
    width, height = (int(v) for v in clip_size.lower().split("x"))
    meta = load_package(package).meta
    with tempfile.TemporaryDirectory(prefix="fsrun-int8-isa-clips-") as scratch:
        clips = render_synth_clips(Path(scratch), SynthClips(count=2, seconds=3.0,
                                                             size=(width, height), seed=930_000))
        videos = [clip.video for clip in clips]
        decoded = decode_videos(videos, meta.fps, meta.input_size, keep_full=False)
    pool = np.concatenate([d.resized for d in decoded])
    picks = np.linspace(0, len(pool) - 1, min(frames, len(pool))).round().astype(int)
    results = measure(package, pool[picks], tuple(_names(cpus)),
                      log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results, name):
        click.echo(str(path))


for _command in DEMO_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
