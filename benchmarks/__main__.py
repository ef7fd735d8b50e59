"""`python -m benchmarks run ...`: measure, then write results.json, report.md and plots."""
from __future__ import annotations

import sys
from pathlib import Path

import click

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
    """fsrun benchmarks: encoder throughput, stage breakdown, baseline, memory, NVDEC.

    Finished experiments (int8 recipes, demo recipes, strides, session start-up, the training
    cache, Ray): `python -m benchmarks.experiments --help`."""


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
@click.option("--precisions", default="",
              help="Stage and end-to-end precisions, e.g. fp16 [default: every one packaged].")
def run(packages, variants, packages_dir, build_missing, out, clips_dir, backends, batch_sizes,
        repeats, warmup, throughput_frames, stage_frames, stage_repeats, e2e_seconds, seconds,
        size, fps, strides, baseline_variants, e2e_repeats, rss_package, rss_seconds,
        rss_factor, spin_variants, graph_resize_variants, spin_rounds, threads, torch_eager,
        append, notes, precisions) -> None:
    """Measure every package on every available backend and write the report."""
    width, height = _size(size)
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
        torch_eager=torch_eager, threads=threads, append=append,
        precisions=tuple(_names(precisions)))
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


@main.command()
@click.option("--package", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=None, help="Model package [default: the bundled demo model].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Results folder [default: benchmarks/results/<machine>].")
@click.option("--work", type=click.Path(path_type=Path, file_okay=False),
              default=HERE / ".clips" / "studio", show_default=True,
              help="Where the clips and the embedding cache are kept between runs.")
@click.option("--minutes", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Length of the cached video post-processing is redone on.")
@click.option("--library", "library_size", type=click.IntRange(1), default=1000,
              show_default=True, help="Videos in the library folder.")
@click.option("--run-seconds", type=click.FloatRange(1.0), default=120.0, show_default=True,
              help="Length of the clip scripted by the studio and by `fsrun VIDEO`.")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
def studio(package, out, work, minutes, library_size, run_seconds, repeats) -> None:
    """fsrun studio's targets: post-processing redone, a 1,000-video library, run overhead."""
    from fsrun.config import demo_model_dir  # noqa: PLC0415

    from benchmarks.studio import StudioBenchConfig, measure, write  # noqa: PLC0415

    cfg = StudioBenchConfig(package=package or demo_model_dir(), work=work,
                            long_minutes=minutes, library_size=library_size,
                            run_seconds=run_seconds, repeats=repeats)
    results = measure(cfg, log=lambda line: click.echo(line, err=True))
    for path in write(out or HERE / "results" / machine_name(), results):
        click.echo(str(path))


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


if __name__ == "__main__":
    sys.exit(main())
