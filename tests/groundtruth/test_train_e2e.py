"""Ground truth end to end: train the tiny variant briefly, export it, run fsrun, grade it.

A time shift, a flipped axis or a stitching bug passes every shape test; here the written
positions must correlate with the known motion (Pearson r >= 0.9) and line up in time within one
source frame on clips the model never saw, with codecs and rates the training never used. The
training is the generalizing recipe (both families of `fsrun synth`, mostly the randomized one,
with augmentation), so the model is also graded on clips of the independent evaluation renderer
(tests/groundtruth/independent.py: objects and backgrounds the training never draws) and must
reach a mean r >= 0.8 there too, no clip under 0.5: it learned where the object is, not what the
training clips look like.

Budget (2 cores, idle): rendering about 50 s, frame stage 1500 steps with augmentation about
130 s, head epochs on cached features (clean and one augmented copy) about 40 s, build 1 s,
six fsrun runs a few seconds. Measured while the H.264 clips still varied between runs:
validation r 0.85-0.93, held-out 0.98-0.99 within 3 ms, independent 0.94-0.99 on two clips and
0.58-0.97 on the checkerboard one; with repeatable clips every run on the 2-core AMD EPYC gives
validation r 0.939 and independent 0.944 / 0.899 / 0.994.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from fsexport.build import BuildConfig, build_package
from fsexport.train.loop import TrainConfig, train
from fsrun.groundtruth.grade import TruthClip, grade
from fsrun.groundtruth.seeds import seed
from fsrun.groundtruth.synth.cli import write_clips
from fsrun.groundtruth.synth.clips import ClipSpec, write_clip

from .independent import EvalScene, grade_package

# Over five minutes of training on 2 cores: CI runs it in its own step (-m long); the default
# suite trains and builds through `fsexport train` in test_training_parts.py.
pytestmark = pytest.mark.long

TRAIN_CLIPS = {"randomized": 48, "classic": 16}  # 10 s each at 96x72, H.264, three frame rates
HELD_OUT = [  # (fps, codec, track): seeds far from the training seeds, codecs never trained on
    ("30", "h264", "sine"),
    ("60", "vp9", "strokes"),
    ("25", "hevc", "irregular"),
]
INDEPENDENT = [  # (fps, codec, scene) drawn by the evaluation renderer
    ("30", "h264", EvalScene("light_ellipse", "plain_dark", "two_sines", (128, 96))),
    ("60", "vp9", EvalScene("shaded_ball", "checker", "ramps", (160, 90))),
    ("25", "hevc", EvalScene("plus", "wall_floor", "chirp", (112, 112))),
]


def train_and_build(root: Path, **train_options: object) -> tuple[Path, float]:
    """Train the tiny variant on the clips under root/data, build its package: (package, best
    validation r)."""
    result = train(TrainConfig(data=root / "data", output=root / "ckpt", variant="tiny",
                               windows_per_epoch=480, batch_size=16, learning_rate=3e-3,
                               val_fraction=0.15, seed=0, progress=False, **train_options),
                   echo=lambda _: None)
    built = build_package(BuildConfig(variant="tiny", output=root, name="gt.fsmodel",
                                      checkpoint=result.checkpoint, set_default=False,
                                      fp16=False, composite=False), log=lambda _: None)
    best = min(result.history, key=lambda epoch: epoch["val_loss"])
    return built.path, best["val_r"]


def assert_tracks_held_out(package: Path, folder: Path, fps: str, codec: str,
                           track: str) -> None:
    """fsrun on a fresh classic clip: raw r >= 0.9 within one source frame, written r >= 0.85."""
    clip = write_clip(ClipSpec(seconds=12.0, fps=fps, codec=codec, width=64, height=48,
                               track=track, seed=seed("tests-held-out-e2e", len(track))), folder)
    [graded] = grade(package, [TruthClip(clip.video, clip.truth)], written=True)
    frame_ms = 1000.0 / float(fps)
    assert graded.raw.pearson_r >= 0.9, graded.raw.summary()
    assert abs(graded.raw.lag_ms) <= frame_ms, graded.raw.summary()
    assert graded.written.pearson_r >= 0.85, f"postprocessed output: {graded.written.summary()}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("groundtruth")
    for family, count in TRAIN_CLIPS.items():
        write_clips(root / "data", count, 10.0, ["30", "25", "60"], ["h264"],
                    seed(f"tests-train-{family}"), (96, 72), family=family)
    return train_and_build(root, frame_steps=1500, epochs=20, augment_copies=1)


def test_training_converges_on_validation_videos(trained: tuple[Path, float]) -> None:
    # Windows of videos held out by the split, not by window; about ten videos, mostly of the
    # randomized family (cluttered, camouflaged scenes), so this checks convergence (measured
    # 0.85-0.93 across runs); the held-out and independent clips below check generalization.
    assert trained[1] >= 0.8


@pytest.mark.parametrize("fps, codec, track", HELD_OUT)
def test_trained_tiny_model_tracks_held_out_motion(trained: tuple[Path, float], tmp_path: Path,
                                                   fps: str, codec: str, track: str) -> None:
    assert_tracks_held_out(trained[0], tmp_path, fps, codec, track)


@pytest.fixture(scope="module")
def independent_rows(trained: tuple[Path, float],
                     tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("independent")
    return [grade_package(trained[0], folder / scene.object_kind, [(fps, codec, scene)],
                          seconds=10.0)[0] for fps, codec, scene in INDEPENDENT]


@pytest.mark.parametrize("index", range(len(INDEPENDENT)),
                         ids=[s.object_kind for *_, s in INDEPENDENT])
def test_trained_tiny_model_tracks_what_another_renderer_draws(
        independent_rows: list[dict], index: int) -> None:
    # A floor per clip and a bound on the mean, not 0.8 on every clip: this brief training is
    # sensitive to small changes in its clips, and the checkerboard clip landed anywhere in
    # 0.58-0.97 while the other two stayed at 0.94-0.99. The training itself repeats exactly on
    # the same clips; what changed between runs was the clips, because x264's macroblock tree
    # read uninitialized memory (off since; see CODECS). Another CPU's float kernels are such a
    # change too. A model that learned the training look instead of the motion scored 0.58 on
    # the light ellipse and -0.12 on the checkerboard: both checks below fail it.
    assert independent_rows[index]["r"] >= 0.5, independent_rows[index]


def test_trained_tiny_model_tracks_the_other_renderer_on_average(
        independent_rows: list[dict]) -> None:
    mean = sum(row["r"] for row in independent_rows) / len(independent_rows)
    assert mean >= 0.8, independent_rows
