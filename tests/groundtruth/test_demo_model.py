"""The bundled demo model follows motion on clips it never saw, in time, drawn by a renderer it
never trained on too."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsexport.train.demo_model import BUNDLED, RECIPES
from fsrun.config import demo_model_dir
from fsrun.files.funscript import read_actions
from fsrun.groundtruth.grade import TruthClip, grade
from fsrun.groundtruth.metrics import compare
from fsrun.groundtruth.seeds import seed
from fsrun.groundtruth.synth.clips import ClipSpec, write_clip
from fsrun.model.package import load_package

from .independent import GRID_SEED, grade_package, grid_scenes, tilt_scenes

RECIPE = RECIPES[BUNDLED]  # what `python -m fsexport.train.demo_model` builds by default
GRID = grid_scenes()  # the independent renderer: one clip per rate and codec
TILT_GRID = tilt_scenes()  # the same renderer's tilting objects: one clip per rate and codec
# Clips of GRID the bundled demo misses (index: measured r); each stays an expected failure
# until a rebuilt demo model tracks it, and then fails as a reminder to remove it here.
KNOWN_MISSES: dict[int, str] = {}

# One held-out clip per codec and a spread of rates, in both families of the training renderer;
# the demo trained on seeds 0..63 (classic) and 100000..100511 (randomized).
HELD_OUT = [("30", "h264"), ("60", "vp9"), ("25", "hevc"), ("29.97", "av1"),
            ("24", "vp9"), ("vfr", "h264")]
FAMILIES = ("classic", "randomized")  # seeds: tests-held-out-FAMILY in the seed table
# Held-out clips of the training renderer that the bundled demo misses, kept as expected failures
# like KNOWN_MISSES above: r below 0.95, and lag beyond one frame.
FAMILY_MISSES = {("randomized", "24", "vp9"): "randomized family, 24 fps VP9: r 0.62"}
LATE: dict[tuple[str, str, str], str] = {}
# The roll (r below 0.9) on the same held-out clips drawn tilting, and on TILT_GRID (where the
# stroke of the same clip is checked too), when the bundled demo writes the roll.
ROLL_MISSES: dict[tuple[str, str, str], str] = {}
TILT_MISSES = {3: "a tall ellipse over a checkerboard, 24 fps AV1: roll r 0.86",
               4: "a bar over bokeh, 25 fps H.264: roll r 0.99, stroke r 0.48 (the stroke "
                  "package never saw a tilting target)",
               10: "a bar over a plain light background, 29.97 fps VP9: roll r 0.59"}
ROLLS = pytest.mark.skipif("roll" not in RECIPE.axes, reason="the bundled demo is stroke only")


def _held_out_params(misses: dict[tuple[str, str, str], str]) -> list:
    return [pytest.param(family, fps, codec, marks=[pytest.mark.xfail(
        strict=True, reason=misses[family, fps, codec])]
        if (family, fps, codec) in misses else [])
        for family in FAMILIES for fps, codec in HELD_OUT]


def test_demo_package_is_small_trained_and_verified() -> None:
    """The bundled package is what `python -m fsexport.train.demo_model` builds by default."""
    package = load_package(demo_model_dir())
    assert package.meta.trained and package.meta.variant == RECIPE.variant
    assert tuple(package.meta.axis_names) == RECIPE.axes
    size = sum(p.stat().st_size for p in demo_model_dir().iterdir())
    assert size <= 16 * 1024 * 1024  # two tiny-x2 models stacked (each about 7 MB)
    if RECIPE.stack:  # each part was trained by its own recipe
        parts = package.meta.provenance["stack"]
        assert [part["package"] for part in parts] == list(RECIPE.stack)
        trainings = [(RECIPES[p["package"]], p["provenance"]["training"]) for p in parts]
    else:
        trainings = [(RECIPE, package.meta.provenance["training"])]
    for recipe, training in trainings:
        assert training["seed"] == recipe.seed
        assert training["options"]["augment"] is recipe.augment
        # a package trained before the option existed changed colours
        assert training["options"].get("augment_colour", "all") == recipe.augment_colour
        assert training["frame_stage"]["steps"] == recipe.frame_steps
        assert training.get("axes", ["stroke"]) == list(recipe.axes)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, float, float]]:
    folder = tmp_path_factory.mktemp("demo_held_out")
    clips = []
    for family in FAMILIES:
        for i, (fps, codec) in enumerate(HELD_OUT):
            clip = write_clip(ClipSpec(seconds=10.0, fps=fps, codec=codec, width=96, height=72,
                                       seed=seed(f"tests-held-out-{family}", i), family=family),
                              folder)
            clips.append(TruthClip(clip.video, clip.truth, {"family": family, "fps": fps,
                                                            "codec": codec}))
    rows = []
    for done in grade(demo_model_dir(), clips):
        family, fps, codec = (done.clip.labels[k] for k in ("family", "fps", "codec"))
        if (family, fps, codec) not in FAMILY_MISSES:  # a missed clip has no axis to check
            flipped = compare(done.result.pts_ms, 100.0 - 100.0 * done.result.positions,
                              *read_actions(done.clip.truth))
            assert flipped.pearson_r < 0, "position axis is flipped"
        rows.append((family, fps, done.raw.pearson_r, done.raw.lag_ms))
    return rows


def _graded_row(graded: list[tuple[str, str, float, float]], family: str, fps: str,
                codec: str) -> tuple[str, str, float, float]:
    """(family, fps, r, lag_ms) of one held-out clip; rows are in HELD_OUT order per family."""
    return [row for row in graded if row[0] == family][HELD_OUT.index((fps, codec))]


@pytest.mark.parametrize("family, fps, codec", _held_out_params(FAMILY_MISSES))
def test_demo_model_tracks_held_out_clips_of_its_training_renderer(
        graded: list[tuple[str, str, float, float]], family: str, fps: str, codec: str) -> None:
    row = _graded_row(graded, family, fps, codec)
    assert row[1] == fps and row[2] >= 0.95, row


@pytest.mark.parametrize("family, fps, codec", _held_out_params(LATE))
def test_demo_model_is_on_time(graded: list[tuple[str, str, float, float]], family: str,
                               fps: str, codec: str) -> None:
    row = _graded_row(graded, family, fps, codec)
    frame_ms = 1000.0 / (30.0 if fps == "vfr" else float(fps))
    assert abs(row[3]) <= frame_ms, row


@pytest.fixture(scope="module")
def graded_roll(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], float]:
    """(family, fps, codec) -> roll r of the held-out clips of HELD_OUT drawn tilting (the same
    seeds, so the same scenes and strokes)."""
    folder = tmp_path_factory.mktemp("demo_roll_held_out")
    clips = []
    for family in FAMILIES:
        for i, (fps, codec) in enumerate(HELD_OUT):
            clip = write_clip(ClipSpec(seconds=10.0, fps=fps, codec=codec, width=96, height=72,
                                       seed=seed(f"tests-held-out-{family}", i), family=family,
                                       axes=("stroke", "roll")), folder)
            clips.append(TruthClip(clip.video, clip.truth, {"family": family, "fps": fps,
                                                            "codec": codec},
                                   {"roll": clip.truths["roll"]}))
    return {tuple(done.clip.labels[k] for k in ("family", "fps", "codec")):
            done.axes["roll"].pearson_r for done in grade(demo_model_dir(), clips)}


@ROLLS
@pytest.mark.parametrize("family, fps, codec", _held_out_params(ROLL_MISSES))
def test_demo_model_rolls_with_held_out_tilting_clips(graded_roll: dict, family: str, fps: str,
                                                      codec: str) -> None:
    assert graded_roll[family, fps, codec] >= 0.9, graded_roll


@pytest.mark.parametrize("index", [
    pytest.param(i, id=f"{rate}-{codec}-{scene.object_kind}-{scene.background_kind}",
                 marks=[pytest.mark.xfail(strict=True, reason=TILT_MISSES[i])]
                 if i in TILT_MISSES else [])
    for i, (rate, codec, scene) in enumerate(TILT_GRID)])
@ROLLS
def test_demo_model_rolls_with_what_another_renderer_tilts(tmp_path: Path, index: int) -> None:
    """Tilting objects of the independent renderer (its own drawing and rotation code), every
    rate and codec: the roll, and the stroke of the same clip."""
    rows = grade_package(demo_model_dir(), tmp_path, [TILT_GRID[index]], seconds=8.0,
                         seed=GRID_SEED + index)
    by_axis = {row.get("axis", "stroke"): row for row in rows}
    assert by_axis["roll"]["r"] >= 0.9 and by_axis["stroke"]["r"] >= 0.9, rows


@pytest.mark.parametrize("index", [
    pytest.param(i, id=f"{rate}-{codec}-{scene.object_kind}-{scene.background_kind}",
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[i])]
                 if i in KNOWN_MISSES else [])
    for i, (rate, codec, scene) in enumerate(GRID)])
def test_demo_model_tracks_what_another_renderer_draws(tmp_path: Path, index: int) -> None:
    """Every rate and codec, objects and backgrounds the training never drew (the first clip is
    a plain light ellipse over a dark plain background), raw per-frame positions."""
    row = grade_package(demo_model_dir(), tmp_path, [GRID[index]], seconds=8.0,
                        seed=GRID_SEED + index)[0]
    assert row["r"] >= 0.9, row


def test_fsrun_demo_command_grades_a_fresh_clip(tmp_path: Path) -> None:
    from fsrun.demo import demo_command

    result = CliRunner().invoke(demo_command, [str(tmp_path), "--seconds", "6", "--seed",
                                               "1000001", "--size", "64x48"])
    assert result.exit_code == 0, result.output
    assert "Pearson r" in result.output
    assert len(list(tmp_path.glob("*.truth.funscript"))) == len(RECIPE.axes)
    predicted = [p for p in tmp_path.glob("*.funscript") if not p.name.endswith(".truth.funscript")]
    assert len(predicted) == len(RECIPE.axes)


def test_fsrun_demo_leaves_no_temp_folder_or_cache_entry(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Run twice without OUTDIR: nothing in the temp folder, no embedding cache entries, and
    one demo folder holding the last run's clip, truth and prediction."""
    from fsrun.cli import main

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cache = Path(os.environ["FSRUN_CACHE_DIR"])
    for clip_seed, codec in (("1000002", "vp9"), ("1000003", "h264")):
        assert main(["demo", "--seconds", "3", "--size", "64x48", "--seed", clip_seed,
                     "--codec", codec]) == 0
    out = capsys.readouterr().out
    assert list(temp.iterdir()) == []
    assert not list(cache.glob("embeddings/*"))
    suffixes = ["" if axis == "stroke" else f".{axis}" for axis in RECIPE.axes]
    assert sorted(p.name for p in (cache / "demo").iterdir()) == sorted(
        ["demo.mp4", *(f"demo{s}.funscript" for s in suffixes),
         *(f"demo{s}.truth.funscript" for s in suffixes)])
    assert f"video:      {cache / 'demo' / 'demo.mp4'}" in out


def test_fsrun_demo_grades_both_lines_over_the_same_points(tmp_path: Path) -> None:
    from fsrun.demo import demo_command

    result = CliRunner().invoke(demo_command, [str(tmp_path), "--seconds", "5", "--seed",
                                               "1000004", "--size", "64x48"])
    assert result.exit_code == 0, result.output
    points = re.findall(r"over (\d+) points", result.output)
    # raw and written stroke, then each other axis on a line of its own
    assert points == ["150"] * (2 + len(RECIPE.axes) - 1), result.output


def test_independent_grid_covers_every_rate_and_codec() -> None:
    from .independent import ENCODERS, RATES

    assert sorted((rate, codec) for rate, codec, _ in GRID) == sorted(
        (rate, codec) for rate in RATES for codec in ENCODERS)


def test_wide_independent_clips_pair_every_object_and_background_with_new_encodings() -> None:
    from collections import Counter

    from .independent import BACKGROUNDS, ENCODERS, OBJECTS, RATES, wide_scenes

    clips = wide_scenes(2 * len(OBJECTS) * len(BACKGROUNDS))
    pairs = Counter((scene.object_kind, scene.background_kind) for _, _, scene in clips)
    assert len(pairs) == len(OBJECTS) * len(BACKGROUNDS) and set(pairs.values()) == {2}
    encodings = Counter((rate, codec) for rate, codec, _ in clips)
    assert len(encodings) == len(RATES) * len(ENCODERS) and len(set(encodings.values())) == 1
    assert len({(s.object_kind, s.background_kind, r, c) for r, c, s in clips}) == len(clips)
