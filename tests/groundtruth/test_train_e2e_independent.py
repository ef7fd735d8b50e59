"""Ground truth end to end: train the tiny variant briefly, export it, run fsrun, grade it.

A time shift, a flipped axis or a stitching bug passes every shape test; here the written
positions must correlate with the known motion (Pearson r >= 0.9) and line up in time within one
source frame on clips the model never saw, with codecs and rates the training never used, and
also on clips of the independent evaluation renderer (objects and backgrounds the training
never drew): training with augmentation on the randomized family learns motion, not a look.

Budget (2 cores, idle): rendering about 10 s, frame stage with augmentation about 40 s, head
epochs on cached features (clean and one augmented copy) about 30 s, build 1 s, six fsrun runs
a few seconds.
"""
# Not yet met: trained this way, the tiny model misses the 0.9 bounds (see issue notes and the
# README's demo table); slow until a recipe reaches them within the default suite's budget.

from __future__ import annotations

from pathlib import Path

import pytest

from fsrun.synth.cli import write_clips

from .independent import EvalScene, grade_package
from .test_train_e2e import HELD_OUT, assert_tracks_held_out, train_and_build

pytestmark = pytest.mark.slow

TRAIN_CLIPS = {"randomized": 36, "classic": 12}  # 4 s each at 64x48, H.264, three frame rates
INDEPENDENT = [  # (fps, codec, scene) drawn by the evaluation renderer
    ("30", "h264", EvalScene("light_ellipse", "plain_dark", "two_sines", (128, 96))),
    ("60", "vp9", EvalScene("shaded_ball", "checker", "ramps", (160, 90))),
    ("25", "hevc", EvalScene("plus", "wall_floor", "chirp", (112, 112))),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("groundtruth")
    for k, (family, count) in enumerate(TRAIN_CLIPS.items()):
        write_clips(root / "data", count, 4.0, ["30", "25", "60"], ["h264"], 1000 * k, (64, 48),
                    family=family)
    return train_and_build(root, frame_steps=700, epochs=15, augment_copies=1)


def test_training_converges_on_validation_videos(trained: tuple[Path, float]) -> None:
    assert trained[1] >= 0.9  # windows of videos held out by the split, not by window


@pytest.mark.parametrize("fps, codec, track", HELD_OUT)
def test_trained_tiny_model_tracks_held_out_motion(trained: tuple[Path, float], tmp_path: Path,
                                                   fps: str, codec: str, track: str) -> None:
    assert_tracks_held_out(trained[0], tmp_path, fps, codec, track)


@pytest.mark.parametrize("fps, codec, scene", INDEPENDENT, ids=[s.object_kind for *_, s in
                                                                INDEPENDENT])
def test_trained_tiny_model_tracks_what_another_renderer_draws(
        trained: tuple[Path, float], tmp_path: Path, fps: str, codec: str,
        scene: EvalScene) -> None:
    row = grade_package(trained[0], tmp_path, [(fps, codec, scene)], seconds=10.0)[0]
    assert row["r"] >= 0.9, row
