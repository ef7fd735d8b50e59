"""The demo-model commands of `python -m benchmarks`: many held-out clips per package
(demo-wide), a package on the clips it trained on (demo-fit), the same scenes at other frame
rates (demo-rates)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks.sysinfo import machine_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
# options more than one command takes
OUT = click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
                   help="Results folder [default: benchmarks/results/<machine>/experiments].")
CLIPS_DIR = click.option("--clips-dir", type=click.Path(path_type=Path, file_okay=False),
                         default=None,
                         help="Keep the clips here and reuse them next time [default: a temp "
                              "folder].")
FAMILY = click.option("--family", type=click.Choice(["randomized", "classic"]),
                      default="randomized", show_default=True,
                      help="The synthetic family the clips are drawn from.")
PACKAGE = click.option("--package", type=click.Path(path_type=Path, file_okay=False, exists=True),
                       required=True, help="The model package to grade.")


def _measure_and_write(measure: Callable[..., dict[str, Any]],
                       write: Callable[[Path, dict[str, Any], str], list[Path]], config: Any,
                       out: Path | None, name: str) -> None:
    """Run one measurement (a ValueError or an fsrun error is the user's input: a one-line
    usage error) and write its result files, printing their paths."""
    from fsrun.errors import FsError  # noqa: PLC0415

    try:
        results = measure(config, log=lambda line: click.echo(line, err=True))
    except (ValueError, FsError) as exc:
        raise click.UsageError(str(exc)) from None
    for path in write(out or RESULTS / machine_name() / "experiments", results, name):
        click.echo(str(path))


def labelled_packages(items: tuple[str, ...]) -> dict[str, Path]:
    """LABEL=PACKAGE_FOLDER options as label -> folder (a one-line error for anything else)."""
    labelled = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            raise click.BadParameter(f"expected LABEL=PACKAGE_FOLDER, got {item!r}",
                                     param_hint="--package")
        labelled[label] = Path(path)
    return labelled


@click.command("demo-wide")
@click.option("--package", "packages", multiple=True, required=True,
              help="LABEL=PATH of a model package to grade (repeat for more).")
@click.option("--clips", type=click.IntRange(1), default=240, show_default=True,
              help="Held-out clips (every rate and codec in turn).")
@click.option("--seconds", type=click.FloatRange(3.0), default=8.0, show_default=True)
@FAMILY
@CLIPS_DIR
@OUT
@click.option("--name", default="demo_wide", show_default=True, help="Stem of the result files.")
@click.option("--axis", type=click.Choice(["stroke", "roll"]), default="stroke",
              show_default=True,
              help="The axis graded: roll draws the same clips tilting (r >= 0.9 its bound).")
def demo_wide(packages: tuple[str, ...], clips: int, seconds: float, family: str,
              clips_dir: Path | None, out: Path | None, name: str, axis: str) -> None:
    """Grade demo packages on many held-out clips of one family; misses by scene."""
    from benchmarks.experiments.demo_wide import WideConfig, measure, write  # noqa: PLC0415

    _measure_and_write(measure, write, WideConfig(labelled_packages(packages), clips, seconds,
                                                  clips_dir, family, axis), out, name)


@click.command("demo-fit")
@PACKAGE
@click.option("--data", type=click.Path(path_type=Path, file_okay=False, exists=True),
              required=True, help="The clips it was trained on (demo_model --work W: W/data).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The training seed (it drew the validation split).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.15,
              show_default=True, help="The training's validation share.")
@click.option("--train-every", type=click.IntRange(1), default=3, show_default=True,
              help="Grade every Nth training clip (every validation clip is graded).")
@FAMILY
@OUT
@click.option("--name", default="demo_fit", show_default=True, help="Stem of the result files.")
def demo_fit(package: Path, data: Path, seed: int, val_fraction: float, train_every: int,
             family: str, out: Path | None, name: str) -> None:
    """Grade a demo package on the clips it trained on and on its validation clips."""
    from benchmarks.experiments.demo_misses import FitConfig, measure_fit, write_fit  # noqa: PLC0415

    _measure_and_write(measure_fit, write_fit,
                       FitConfig(package, data, val_fraction, seed, train_every, family), out, name)


@click.command("demo-rates")
@PACKAGE
@click.option("--clips", type=click.IntRange(1), default=240, show_default=True,
              help="demo-wide's clip set; its VFR clips are rendered again.")
@click.option("--seconds", type=click.FloatRange(3.0), default=8.0, show_default=True)
@click.option("--rates", default="24,30,60", show_default=True,
              help="Constant rates each VFR clip is rendered at, comma separated.")
@FAMILY
@CLIPS_DIR
@OUT
@click.option("--name", default="demo_rates", show_default=True,
              help="Stem of the result files.")
def demo_rates(package: Path, clips: int, seconds: float, rates: str, family: str,
               clips_dir: Path | None, out: Path | None, name: str) -> None:
    """Grade the same scenes at a variable and at constant frame rates."""
    from benchmarks.experiments.demo_misses import RatesConfig, measure_rates, write_rates  # noqa: PLC0415
    from fsrun.groundtruth.synth.clips import parse_fps  # noqa: PLC0415

    chosen = tuple(v.strip() for v in rates.split(",") if v.strip())
    for rate in chosen:
        try:
            parse_fps(rate)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rates") from None
    _measure_and_write(measure_rates, write_rates,
                       RatesConfig(package, clips, seconds, chosen, clips_dir, family), out, name)


@click.command("clip-looks")
@click.option("--video", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True, help="The clip (for one of the independent grid: python -m "
                                  "tests.groundtruth.independent PACKAGE FOLDER keeps them).")
@click.option("--truth", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True, help="Its truth funscript.")
@click.option("--package", "packages", multiple=True, required=True,
              help="LABEL=PATH of a model package to grade (repeat for more).")
@OUT
@click.option("--name", default="clip_looks", show_default=True, help="Stem of the result files.")
def clip_looks(video: Path, truth: Path, packages: tuple[str, ...], out: Path | None,
               name: str) -> None:
    """Grade packages on one clip in several looks (grey, swapped channels, inverted...)."""
    from benchmarks.experiments.clip_looks import ClipLooksConfig, measure, write  # noqa: PLC0415

    _measure_and_write(measure, write, ClipLooksConfig(video, truth, labelled_packages(packages)),
                       out, name)


DEMO_COMMANDS = (demo_wide, demo_fit, demo_rates, clip_looks)
