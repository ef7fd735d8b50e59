"""`fsrun demo`: render a fresh clip with known motion, run the model on it, grade the result.

The bundled demo model (fsrun/demo/demo.fsmodel) is the tiny-x2 variant trained only on synthetic
clips from fsrun.groundtruth.synth: it tracks the synthetic target and nothing else. Real videos need a model
trained on real data (`fsexport train`, then `fsexport build --checkpoint`).
"""
from __future__ import annotations

import secrets
from pathlib import Path

import click

from fsrun import config as user_config
from fsrun.errors import ModelError
from fsrun.groundtruth.grade import TruthClip, grade
from fsrun.groundtruth.metrics import Agreement
from fsrun.groundtruth.seeds import seed_range
from fsrun.groundtruth.synth.clips import CODECS, ClipSpec, parse_fps, write_clip
from fsrun.groundtruth.synth.tracks import TRACK_KINDS
from fsrun.defaults import DEFAULT_STRIDE
from fsrun.run.request import RunHooks, SessionSpec

MIN_R = 0.9  # agreement the demo model is expected to reach
# Without OUTDIR every run reuses one folder in the user cache folder, under this file name, so
# the last demo's clip, truth and prediction stay there to look at and nothing piles up.
DEMO_NAME = "demo"


def _model_axes(package: Path) -> tuple[str, ...]:
    """The axes the clip renders: those of the model that synthetic clips draw (roll), so every
    axis the model writes is graded."""
    from fsrun.groundtruth.synth.axes import RENDERED  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415

    return tuple(a for a in load_package(package, verify=False).meta.axis_names if a in RENDERED)


def _frame_ms(fps: str) -> float:
    rate = parse_fps(fps)
    return 1000.0 / (30.0 if isinstance(rate, str) else float(rate))  # vfr: ~30 fps frames


def _verdict(agreement: Agreement, frame_ms: float) -> str:
    ok = agreement.pearson_r >= MIN_R and abs(agreement.lag_ms) <= frame_ms
    return "tracks the motion" if ok else "does NOT track the motion well"


@click.command("demo")
@click.argument("outdir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model package (default: the bundled demo model).")
@click.option("--seconds", type=click.FloatRange(3, 600), default=20.0, show_default=True)
@click.option("--fps", default="30", show_default=True, help="24, 25, 29.97, 30, 60 or vfr.")
@click.option("--codec", type=click.Choice(list(CODECS)), default="h264", show_default=True)
@click.option("--track", type=click.Choice(list(TRACK_KINDS)), default="mixed", show_default=True)
@click.option("--layout", type=click.Choice(["flat", "sbs"]), default="flat", show_default=True,
              help="sbs renders side-by-side VR and runs on the left half.")
@click.option("--size", default="160x120", show_default=True, help="WxH of one view.")
@click.option("--seed", type=int, default=None, help="Clip seed (default: a fresh one).")
@click.option("--stride", type=click.IntRange(1), default=DEFAULT_STRIDE, show_default=True)
def demo_command(outdir: Path | None, model: Path | None, seconds: float, fps: str, codec: str,
                 track: str, layout: str, size: str, seed: int | None, stride: int) -> None:
    """Render a clip with known motion, run fsrun on it, and print agreement with the truth.

    Files go to OUTDIR, or else replace the previous demo's in the user cache folder
    (demo/ under $FSRUN_CACHE_DIR or the default). The bundled model tracks synthetic motion
    only; real videos need a model trained on real data.
    """
    from fsrun.groundtruth.synth.cli import _parse_size, _quiet_svt  # noqa: PLC0415

    package = Path(model) if model is not None else user_config.demo_model_dir()
    if not package.is_dir():
        raise ModelError(f"{package}: demo model not found; rebuild it with "
                         "`python -m fsexport.train.demo_model` or pass --model")
    width, height = _parse_size(size)
    axes = _model_axes(package)
    fresh = seed_range("demo")  # the demo model never trains on these
    seed = seed if seed is not None else fresh.first + secrets.randbelow(fresh.size)
    reused = outdir is None
    folder = user_config.cache_dir() / "demo" if reused else Path(outdir)
    if reused:  # only the files an earlier demo wrote here, whatever their codec's suffix
        for old in folder.glob(f"{DEMO_NAME}.*"):
            if old.is_file():
                old.unlink()
    _quiet_svt()
    click.echo(f"rendering a {seconds:g} s {track} clip ({fps} fps, {codec}, {layout}, "
               f"seed {seed}) into {folder}", err=True)
    clip = write_clip(ClipSpec(seconds=seconds, fps=fps, codec=codec, width=width, height=height,
                               layout=layout, track=track, seed=seed, axes=axes), folder,
                      name=DEMO_NAME if reused else None)
    others = {a: p for a, p in clip.truths.items() if a != "stroke"}
    # A fresh clip every time: a cache entry would never be read again.
    [graded] = grade(package, [TruthClip(clip.video, clip.truth, {}, others)],
                     SessionSpec(use_cache=False),
                     {"stride": stride, "crop": "sbs-left" if layout == "sbs" else "full"},
                     written=True, hooks=RunHooks(log=lambda msg: click.echo(msg, err=True)))
    raw, written = graded.raw, graded.written
    frame_ms = _frame_ms(fps)
    click.echo(f"video:      {clip.video}")
    click.echo(f"truth:      {clip.truth}")
    click.echo(f"prediction: {graded.result.output}")
    click.echo(f"raw positions vs truth:   {raw.summary()}")
    click.echo(f"written funscript vs truth: {written.summary()}")
    click.echo(f"the model {_verdict(raw, frame_ms)} (target: r >= {MIN_R}, "
               f"|lag| <= one frame = {frame_ms:.0f} ms)")
    for axis, agreement in graded.axes.items():
        click.echo(f"{axis}: {graded.result.outputs.get(axis, '(not written)')}")
        click.echo(f"{axis}, raw positions vs truth ({clip.truths[axis].name}): "
                   f"{agreement.summary()}")
        click.echo(f"the model's {axis} {_verdict(agreement, frame_ms).replace('motion', axis)}")
    click.echo("note: the demo model tracks synthetic motion only; real videos need a model "
               "trained on real data")
