"""Roll in synthetic clips (drawn under the documented convention, truth per axis, the stroke
clip unchanged) and in training (labels per axis, a missing one masked, the package's axes)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fsrun.errors import UsageError
from fsrun.files.funscript import read_actions, truth_path
from fsrun.groundtruth.seeds import seed
from fsrun.groundtruth.synth.axes import ROLL_DEGREES, elongated, roll_angle
from fsrun.groundtruth.synth.clips import ClipSpec, track_and_scene
from fsrun.groundtruth.synth.cli import write_clips
from fsrun.groundtruth.synth.shapes import Primitive, Shape, paint


def _lean(angle: float) -> float:
    """Covariance of x and y over an elongated shape painted at angle: below 0 when its top
    leans to the viewer's right (rows grow downwards)."""
    img = np.zeros((80, 80, 3), np.float32)
    like = Shape([Primitive("ellipse", (0, 0), (1, 1))], np.full(3, 255, np.float32),
                  np.full(3, 255, np.float32))
    paint(img, elongated(np.random.default_rng(1), like), 40, 40, 20, angle)
    ys, xs = np.nonzero(img[..., 0] > 128)
    return float(np.cov(xs, ys)[0, 1])


def test_roll_convention_100_is_the_top_to_the_right() -> None:
    assert roll_angle(0.5) == 0.0
    assert roll_angle(1.0) == pytest.approx(np.radians(ROLL_DEGREES))
    assert _lean(roll_angle(1.0)) < -5 and _lean(roll_angle(0.0)) > 5
    assert abs(_lean(roll_angle(0.5))) < 1


@pytest.mark.parametrize("family", ["classic", "randomized"])
def test_a_rolling_clip_keeps_its_stroke_and_writes_truth_per_axis(family: str,
                                                                   tmp_path: Path) -> None:
    first = seed("tests-studio", 600)
    plain = write_clips(tmp_path / "plain", 1, 2.0, ["30"], ["h264"], first, (64, 48),
                        family=family)[0]
    rolled = write_clips(tmp_path / "rolled", 1, 2.0, ["30"], ["h264"], first, (64, 48),
                         family=family, axes=("stroke", "roll", "sway", "surge"))[0]
    assert read_actions(plain.truth)[1].tolist() == read_actions(rolled.truth)[1].tolist()
    assert set(rolled.truths) == {"stroke", "roll", "sway", "surge"}
    spec = ClipSpec(seconds=2.0, width=64, height=48, seed=first, family=family,
                    track=json.loads(rolled.truth.read_text())["metadata"]["synth"]["track"],
                    axes=("stroke", "roll"))
    _, scene = track_and_scene(spec)
    roll_ms, roll_pos = read_actions(truth_path(rolled.video, "roll"))
    assert np.allclose(roll_pos, np.round(100 * scene.tilt.roll.at(roll_ms / 1000.0)), atol=1.01)
    assert roll_pos.std() > 3  # it moves
    meta = json.loads(truth_path(rolled.video, "roll").read_text())["metadata"]
    assert meta["axis"] == "roll" and "clockwise" in meta["notes"]
    assert "axes" not in json.loads(plain.truth.read_text())["metadata"]["synth"]


def test_pairs_carry_each_axis_and_a_missing_one_is_masked(tmp_path: Path) -> None:
    from fsexport.train.dataset import decode_pair, find_pairs  # noqa: PLC0415
    from fsexport.train.frame_stage import masked_mse  # noqa: PLC0415

    first = seed("tests-studio", 700)
    write_clips(tmp_path, 1, 2.5, ["30"], ["h264"], first, (64, 48), axes=("stroke", "roll"))
    write_clips(tmp_path, 1, 2.5, ["30"], ["h264"], first + 1, (64, 48))
    pairs = find_pairs(tmp_path, ("stroke", "roll"))
    assert [p.axis_scripts[0] is not None for p in pairs] == [True, False]
    labels = [decode_pair(p, 30.0, 32).labels for p in pairs]
    assert labels[0].shape[1] == 2 and np.isfinite(labels[0]).all()
    assert np.isnan(labels[1][:, 1]).all() and np.isfinite(labels[1][:, 0]).all()
    with pytest.raises(UsageError):
        find_pairs(tmp_path / "nothing")
    prediction = torch.tensor([[0.2, 0.9], [0.4, 0.1]])
    known = torch.tensor([[0.2, float("nan")], [0.5, float("nan")]])
    assert float(masked_mse(prediction, known)) == pytest.approx(0.005)
    assert float(masked_mse(prediction, torch.full((2, 2), float("nan")))) == 0.0


def test_train_two_axes_then_build_and_run(tmp_path: Path) -> None:
    from fsexport.build import BuildConfig, build_package  # noqa: PLC0415
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415
    from fsrun import cli  # noqa: PLC0415
    from fsrun.files.funscript import default_output  # noqa: PLC0415

    data = tmp_path / "data"
    first = seed("tests-studio", 800)
    write_clips(data, 2, 2.5, ["30"], ["h264"], first, (64, 48), axes=("stroke", "roll"))
    write_clips(data, 1, 2.5, ["30"], ["h264"], first + 2, (64, 48))
    result = train(TrainConfig(data=data, output=tmp_path / "ck", variant="tiny", epochs=1,
                               batch_size=2, windows_per_epoch=4, frame_steps=2,
                               axes=("stroke", "roll"), val_fraction=0.34, progress=False,
                               augment_colour="stroke-only"),  # two augmenters, split batches
                   echo=lambda _: None)
    described = json.loads(result.config_path.read_text())
    assert described["axes"] == ["stroke", "roll"]
    assert described["options"]["augment_colour"] == "stroke-only"
    assert len(described["history"][0]["val_r_axes"]) == 2
    assert described["options"]["flip"] is True  # asked for, and turned off for the roll:
    assert result.frame_stage is not None and len(result.frame_stage.val_r_axes) == 2
    built = build_package(BuildConfig(variant="tiny", output=tmp_path, checkpoint=result.checkpoint,
                                      set_default=False, fp16=False, composite=False))
    assert built.meta.axes == ["stroke", "roll"]
    video = next(data.glob("*.mp4"))
    assert cli.main([str(video), "-m", str(built.path), "-q", "--no-cache"]) == 0
    assert default_output(video, "roll").is_file()


def test_warm_start_loads_a_packages_encoder(axis_packages) -> None:
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.train.warm_start import load_package_encoder, restore_batchnorm  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    one, _ = axis_packages
    model = create_model(get_variant("tiny"), seed=99)
    load_package_encoder(model.encoder, one)  # checks itself against ONNX Runtime
    frames = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (8, 48, 64, 3),
                                                                dtype=np.uint8))
    model.encoder.eval()
    with torch.no_grad():
        before = model.encoder(frames)
        restore_batchnorm(model.encoder, frames.numpy(), count=8, batch=4)
        after = model.encoder(frames)
    assert torch.allclose(before, after, atol=1e-4 * float(before.abs().max()))
    norms = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert any(float(m.running_var.mean()) != pytest.approx(1.0, abs=0.05) for m in norms)
    with pytest.raises(UsageError, match="variant"):
        load_package_encoder(create_model(get_variant("tiny-x2"), seed=1).encoder, one)


def test_training_starts_from_a_package(axis_packages, tmp_path: Path) -> None:
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415

    one, _ = axis_packages
    data = tmp_path / "data"
    write_clips(data, 2, 2.5, ["30"], ["h264"], seed("tests-studio", 900), (64, 48),
                axes=("stroke", "roll"))
    lines: list[str] = []
    result = train(TrainConfig(data=data, output=tmp_path / "ck", variant="tiny", epochs=1,
                               batch_size=2, windows_per_epoch=4, frame_steps=2,
                               axes=("stroke", "roll"), init_from=one, val_fraction=0.5,
                               progress=False), echo=lines.append)
    assert f"encoder from {one}" in lines
    assert json.loads(result.config_path.read_text())["options"]["init_from"] == one.name
    with pytest.raises(UsageError, match="variant"):
        train(TrainConfig(data=data, output=tmp_path / "ck2", variant="tiny-x2", epochs=1,
                          init_from=one, progress=False), echo=lines.append)


def test_a_head_trained_on_a_packages_encoder_keeps_its_dense(axis_packages,
                                                               tmp_path: Path) -> None:
    """No frame stage: the head trains on standardized features of the loaded encoder, and the
    loaded Dense(256) must take them as the package's did (saved, it computes the same)."""
    import onnxruntime as ort  # noqa: PLC0415

    from fsexport.build import BuildConfig, build_package  # noqa: PLC0415
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415

    one, _ = axis_packages
    data = tmp_path / "data"
    write_clips(data, 2, 2.5, ["30"], ["h264"], seed("tests-studio", 901), (64, 48))
    result = train(TrainConfig(data=data, output=tmp_path / "ck", variant="tiny", epochs=1,
                               batch_size=2, windows_per_epoch=2, frame_steps=0,
                               learning_rate=1e-9, init_from=one, val_fraction=0.5,
                               progress=False), echo=lambda _: None)
    built = build_package(BuildConfig(variant="tiny", output=tmp_path, checkpoint=result.checkpoint,
                                      set_default=False, fp16=False, composite=False))
    frames = np.random.default_rng(4).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    embeddings = []
    for package in (one, built.path):
        session = ort.InferenceSession(str(package / "encoder.onnx"),
                                       providers=["CPUExecutionProvider"])
        embeddings.append(session.run(None, {session.get_inputs()[0].name: frames})[0])
    scale = float(np.abs(embeddings[0]).max())
    assert np.abs(embeddings[1] - embeddings[0]).max() < 1e-3 * scale


def test_an_encoder_blends_from_a_package_to_its_fine_tune(axis_packages,
                                                            tmp_path: Path) -> None:
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.train.blend import blend_encoder  # noqa: PLC0415
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415
    from fsexport.train.warm_start import load_package_encoder, restore_batchnorm  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    one, _ = axis_packages
    data = tmp_path / "data"
    write_clips(data, 2, 2.5, ["30"], ["h264"], seed("tests-studio", 902), (64, 48))
    tuned = train(TrainConfig(data=data, output=tmp_path / "tuned", variant="tiny", epochs=1,
                              batch_size=2, windows_per_epoch=2, frame_steps=3, frame_batch=8,
                              init_from=one, val_fraction=0.5, progress=False),
                  echo=lambda _: None).checkpoint
    frames = np.random.default_rng(5).integers(0, 256, (16, 48, 64, 3), dtype=np.uint8)
    batch = torch.from_numpy(frames[:4])

    def started() -> torch.nn.Module:
        encoder = create_model(get_variant("tiny"), seed=7).encoder
        load_package_encoder(encoder, one)
        restore_batchnorm(encoder, frames, count=16, batch=8)
        return encoder.eval()

    start, kept, halfway = started(), started(), started()
    blend_encoder(kept, tuned, 0.0, frames, batch=8)
    blend_encoder(halfway, tuned, 0.5, frames, batch=8)
    end = {k[len("encoder."):]: v for k, v in load_file(str(tuned)).items()}
    measured = ("running_mean", "running_var", "num_batches_tracked")
    moved = 0
    for name, value in start.state_dict().items():
        if name.endswith(measured):  # measured again on the frames, not blended
            continue
        assert torch.equal(kept.state_dict()[name], value), name
        assert torch.allclose(halfway.state_dict()[name], (value + end[name]) / 2), name
        moved += not torch.allclose(value, end[name])
    assert moved > 10  # the fine-tune changed them: the blend is between two encoders
    # the first BatchNorm sees the stem's output alike; a deeper one the start's shifts
    norm = [k for k in start.state_dict() if k.endswith("running_mean")][-1]
    assert not torch.allclose(kept.state_dict()[norm], start.state_dict()[norm])
    with torch.no_grad():
        assert not torch.allclose(halfway.eval()(batch), start(batch), atol=1e-3)
    with pytest.raises(UsageError, match="share"):
        blend_encoder(started(), tuned, 1.5, frames)
    with pytest.raises(UsageError, match="does not match"):
        blend_encoder(create_model(get_variant("tiny-x2"), seed=1).encoder, tuned, 0.5, frames)
    with pytest.raises(UsageError, match="not a checkpoint"):
        blend_encoder(started(), data / "missing.safetensors", 0.5, frames)
    (tmp_path / "cut.safetensors").write_bytes(tuned.read_bytes()[:1000])
    with pytest.raises(UsageError, match="not a checkpoint"):
        blend_encoder(started(), tmp_path / "cut.safetensors", 0.5, frames)
    broken = load_file(str(tuned))
    broken["encoder.backbone.conv_stem.weight"][0] = float("nan")
    save_file(broken, str(tmp_path / "nan.safetensors"))
    with pytest.raises(UsageError, match="NaN"):
        blend_encoder(started(), tmp_path / "nan.safetensors", 0.5, frames)
    with pytest.raises(UsageError, match="give both"):
        train(TrainConfig(data=data, output=tmp_path / "x", blend_with=tuned, progress=False))
    from click.testing import CliRunner  # noqa: PLC0415

    from fsexport.cli import main as fsexport_main  # noqa: PLC0415

    result = CliRunner().invoke(fsexport_main, [
        "train", "--data", str(data), "--output", str(tmp_path / "blended"), "--epochs", "1",
        "--batch-size", "2", "--windows-per-epoch", "2", "--val-fraction", "0.5",
        "--init-from", str(one), "--blend-with", str(tuned), "--blend-share", "0.25"])
    assert result.exit_code == 0, result.output
    assert f"encoder blended 0.25 of the way to {tuned}" in result.output
    assert (tmp_path / "blended" / "checkpoint.safetensors").is_file()
    for wrong, says in ((["--blend-share", "0.3"], "goes with --blend-with"),
                        (["--blend-with", str(tuned)], "give both"),
                        (["--init-from", str(one), "--blend-with", str(tuned), "--blend-share",
                          "nan"], "must lie in [0, 1]")):
        result = CliRunner().invoke(fsexport_main, ["train", "--data", str(data), "--output",
                                                    str(tmp_path / "wrong"), *wrong])
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "wrong" / "checkpoint.safetensors").exists()


def test_synth_command_writes_each_axis_truth(tmp_path: Path) -> None:
    from fsrun import cli  # noqa: PLC0415

    assert cli.main(["synth", str(tmp_path), "--count", "1", "--seconds", "1.5", "--size",
                     "64x48", "--axes", "stroke,roll,sway"]) == 0
    video = next(tmp_path.glob("*.mp4"))
    for axis in ("stroke", "roll", "sway"):
        assert truth_path(video, axis).is_file()
    assert not truth_path(video, "surge").exists()
    for bad in ("roll,stroke", "stroke,pitch", "stroke,wiggle"):
        assert cli.main(["synth", str(tmp_path / "bad"), "--axes", bad]) == 2
    assert not (tmp_path / "bad").exists()
