"""Training pieces: pairs, split by video, labels at frame timestamps, feature cache, resume."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fsexport.model import create_model
from fsexport.train.dataset import (decode_pair, find_pairs, fixed_windows, random_windows,
                                    split_by_video, window_starts)
from fsexport.train.features_cache import FeatureCache, FeatureScaler
from fsexport.train.loop import TrainConfig, export_state, train
from fsexport.variants import get_variant
from fsrun.errors import UsageError
from fsrun.groundtruth.synth.cli import write_clips


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs")
    write_clips(folder, 4, 3.0, ["30", "60"], ["h264"], 40, (32, 24))
    (folder / "orphan.mp4").write_bytes(b"")  # no funscript: not a pair
    return folder


def test_pairs_and_split_by_video(small_data: Path) -> None:
    pairs = find_pairs(small_data)
    assert len(pairs) == 4 and all(p.funscript.name == p.video.stem + ".truth.funscript"
                                   for p in pairs)
    train_pairs, val_pairs = split_by_video(pairs, 0.25, seed=1)
    assert len(val_pairs) == 1 and not set(train_pairs) & set(val_pairs)
    assert split_by_video(pairs, 0.25, seed=1) == (train_pairs, val_pairs)
    with pytest.raises(UsageError):
        find_pairs(small_data / "missing")


def test_pairs_never_train_on_fsrun_output(tmp_path: Path) -> None:
    """A VIDEO.funscript that fsrun wrote is a prediction: without truth it is no label."""
    import shutil

    clip = write_clips(tmp_path / "src", 1, 1.0, ["30"], ["h264"], 41, (32, 24))[0]
    mine = tmp_path / "data" / "mine.mp4"
    predicted = tmp_path / "data" / "predicted.mp4"
    mine.parent.mkdir()
    for video in (mine, predicted):
        shutil.copy(clip.video, video)
    doc = json.loads(clip.truth.read_text())
    mine.with_suffix(".funscript").write_text(json.dumps(doc))  # a creator's own labels
    doc["metadata"] = {"generator": {"name": "fsrun", "version": "0.1.0"}}
    predicted.with_suffix(".funscript").write_text(json.dumps(doc))
    assert [(p.video.name, p.funscript.name) for p in find_pairs(mine.parent)] == \
        [("mine.mp4", "mine.funscript")]
    shutil.copy(clip.truth, predicted.with_suffix(".truth.funscript"))
    assert [p.funscript.name for p in find_pairs(mine.parent)] == \
        ["mine.funscript", "predicted.truth.funscript"]


def test_labels_are_the_truth_at_sampled_timestamps(small_data: Path) -> None:
    sixty = next(p for p in find_pairs(small_data) if "_60_" in p.video.name)
    video = decode_pair(sixty, fps=30.0, input_size=64)
    assert video.frames.shape[1:] == (64, 64, 3)
    assert len(video) == 90  # 3 s of 60 fps at a 30 fps model: every other frame
    np.testing.assert_allclose(np.diff(video.pts_ms), 1000 / 30, atol=0.5)

    actions = json.loads(sixty.funscript.read_text())["actions"]
    truth = {a["at"]: a["pos"] / 100 for a in actions}
    for t, label in zip(video.pts_ms, video.labels):
        assert label == pytest.approx(truth[int(round(t))], abs=0.011)  # pos is whole units


def test_windows_cover_the_end_and_stay_inside() -> None:
    assert window_starts(100, 60, 30) == [0, 30, 40]
    assert window_starts(50, 60, 30) == []
    refs = random_windows([100, 61, 10], 60, 200, np.random.default_rng(0))
    assert all(r.video in (0, 1) and 0 <= r.start <= [40, 1][r.video] for r in refs)
    assert [(r.video, r.start) for r in fixed_windows([100], 60, 30)] == [(0, 0), (0, 30), (0, 40)]


def test_feature_cache_reuses_and_scaler_folds_exactly(tmp_path: Path) -> None:
    model = create_model(get_variant("tiny"))
    frames = np.random.default_rng(0).integers(0, 255, (5, 40, 48, 3), dtype=np.uint8)
    cache = FeatureCache(model.encoder, tmp_path)
    first = cache.features(frames)
    again = FeatureCache(model.encoder, tmp_path).features(frames)  # from disk
    torch.testing.assert_close(first, again)
    assert cache.computed == 5 and list(tmp_path.glob("*.npy"))
    with torch.no_grad():
        scaler = FeatureScaler.fit(first)
        trained = model.encoder.embed_features(scaler(first))
        state = export_state(model, scaler)
        model.load_state_dict(state)
        exported = model.encoder(torch.from_numpy(frames))
    torch.testing.assert_close(exported, trained, rtol=1e-4, atol=1e-4)


def test_train_writes_checkpoint_and_resumes(small_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(data=small_data, output=tmp_path, epochs=1, windows_per_epoch=4,
                         batch_size=4, val_fraction=0.25, progress=False, threads=1)
    config.variant = "tiny"
    first = train(config, echo=lambda _: None)
    assert first.checkpoint.is_file() and first.config_path.is_file()
    assert len(first.history) == 1
    config.epochs, config.resume = 2, True
    second = train(config, echo=lambda _: None)
    assert [h["epoch"] for h in second.history] == [1, 2]

    meta = json.loads(second.config_path.read_text())
    assert meta["variant"] == "tiny" and meta["window"] == 60 and meta["epochs"] == 2


def test_train_command_then_build_consumes_the_checkpoint(small_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fsexport.build import BuildConfig, build_package
    from fsexport.train.cli import train_command

    result = CliRunner().invoke(train_command, [
        "--data", str(small_data), "--output", str(tmp_path / "ckpt"), "--epochs", "1",
        "--windows-per-epoch", "4", "--batch-size", "4", "--val-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    checkpoint = tmp_path / "ckpt" / "checkpoint.safetensors"
    built = build_package(BuildConfig(variant="tiny", output=tmp_path, checkpoint=checkpoint,
                                      set_default=False, fp16=False, composite=False,
                                      verify=False), log=lambda _: None)
    assert built.meta.trained and built.meta.provenance["training"]["epochs"] == 1
    options = built.meta.provenance["training"]["options"]
    assert options["augment"] is True and options["augment_copies"] == 2  # on by default
    plain = CliRunner().invoke(train_command, [
        "--data", str(small_data), "--output", str(tmp_path / "plain"), "--epochs", "1",
        "--windows-per-epoch", "4", "--batch-size", "4", "--val-fraction", "0.25",
        "--no-augment", "--no-flip"])
    assert plain.exit_code == 0, plain.output
    options = json.loads((tmp_path / "plain" / "checkpoint.json").read_text())["options"]
    assert options["augment"] is False and options["flip"] is False


def test_head_init_starts_lstms_remembering_and_outputs_mid_range() -> None:
    from fsexport.train.loop import init_head

    model = create_model(get_variant("tiny"))
    init_head(model)
    units = model.head.lstm1.hidden_size
    for name, bias in model.head.lstm2.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(bias[units:2 * units] == 1.0)
            assert not torch.all(bias[:units] == 1.0)  # only the forget gate moves
    with torch.no_grad():
        out = model.head(torch.rand(2, 60, 256))
    assert out.min() > 0.0  # no output starts in the ReLU's zero-gradient region


def test_checkpoint_carries_calibrated_batchnorm_and_input_size(small_data: Path,
                                                                tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from fsexport.build import BuildConfig, build_package

    config = TrainConfig(data=small_data, output=tmp_path / "ckpt", epochs=1, windows_per_epoch=4,
                         batch_size=4, val_fraction=0.25, progress=False, threads=1,
                         input_size=96)
    result = train(config, echo=lambda _: None)
    state = load_file(str(result.checkpoint))
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert variances and not all(torch.all(v == 1.0) for v in variances)  # not identity stats

    assert json.loads(result.config_path.read_text())["input_size"] == 96
    built = build_package(BuildConfig(variant="tiny", output=tmp_path, checkpoint=result.checkpoint,
                                      input_size=96, set_default=False, fp16=False,
                                      composite=False, verify=False), log=lambda _: None)
    assert built.meta.input_size == 96
    import onnxruntime as ort

    frames = np.random.default_rng(1).integers(0, 255, (3, 48, 64, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(built.path / "encoder.onnx"),
                                   providers=["CPUExecutionProvider"])
    exported = session.run(None, {"frames": frames})[0]
    with torch.no_grad():  # the package runs the trained encoder, BatchNorm statistics included
        trained = result.model.encoder(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(exported, trained, rtol=1e-3, atol=1e-4)


def test_frame_stage_trains_the_backbone_and_resume_keeps_it(small_data: Path,
                                                             tmp_path: Path) -> None:

    from safetensors.torch import load_file

    from fsexport.model import calibrate_batchnorm

    config = TrainConfig(data=small_data, output=tmp_path, epochs=1, windows_per_epoch=4,
                         batch_size=4, val_fraction=0.25, progress=False, threads=1,
                         frame_steps=6, frame_batch=16)
    first = train(config, echo=lambda _: None)
    assert first.frame_stage is not None and first.frame_stage.steps == 6
    assert np.isfinite(first.frame_stage.val_r)
    untrained = create_model(get_variant("tiny"), seed=0)
    calibrate_batchnorm(untrained.encoder, seed=0)
    fresh = {f"encoder.backbone.{k}": v for k, v in untrained.encoder.backbone.state_dict().items()}
    trained = load_file(str(first.checkpoint))
    moved = [k for k, v in fresh.items() if v.is_floating_point() and k.endswith("weight")
             and not torch.equal(v, trained[k])]
    assert moved, "the frame stage left the backbone as it was"

    config.epochs, config.resume = 2, True
    second = train(config, echo=lambda _: None)
    assert second.frame_stage is None  # a resumed run does not train frames again
    resumed = load_file(str(second.checkpoint))
    for key in fresh:  # the head trained on the frame-stage backbone, which stayed frozen
        assert torch.equal(resumed[key], trained[key]), key
    meta = json.loads(second.config_path.read_text())
    assert meta["frame_stage"]["steps"] == 6 and [h["epoch"] for h in meta["history"]] == [1, 2]


def test_augmentation_changes_every_frame_of_a_call_the_same_way() -> None:
    """One draw per call: identical frames stay identical (sensor noise, which is new in every
    frame by nature, is left out here; its strength is drawn once per call too)."""
    from fsexport.train.augment import AugmentConfig, Augmenter

    still = np.random.default_rng(0).integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    window = np.repeat(still, 12, axis=0)  # twelve identical frames
    augment = Augmenter(AugmentConfig(noise_chance=0.0), seed=3)
    outputs = [augment(window) for _ in range(6)]
    for out in outputs:
        assert out.shape == window.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[0], frame) for frame in out[1:]), "frames drawn apart"
    assert sum(not np.array_equal(out, window) for out in outputs) >= 5
    assert len({out.tobytes() for out in outputs}) == 6  # a new draw every call
    again = Augmenter(AugmentConfig(noise_chance=0.0), seed=3)
    assert all(np.array_equal(again(window), out) for out in outputs)  # seeded: repeats


def test_augmentation_without_colour_keeps_every_colour() -> None:
    """without_colour() drops jitter, grey and swapped channels; crop, blur, noise and JPEG stay,
    and none of those moves a flat colour."""
    from fsexport.train.augment import AugmentConfig, Augmenter

    frame = np.empty((1, 32, 32, 3), dtype=np.uint8)
    frame[:] = (200, 60, 30)
    full = Augmenter(AugmentConfig(), seed=2)
    plain = Augmenter(AugmentConfig().without_colour(), seed=2)
    shifts = [np.abs(a(frame).reshape(-1, 3).mean(0) - (200, 60, 30)).max()
              for a in (full, plain) for _ in range(20)]
    assert max(shifts[20:]) < 4, shifts[20:]
    assert sum(s > 20 for s in shifts[:20]) >= 5, shifts[:20]


def test_stroke_only_colour_spares_the_frames_labelled_on_another_axis() -> None:
    """colour="stroke-only": in a batch of single frames, those with a roll label keep their
    colours and the others still change; for_labels picks the colourless twin for a stretch
    with roll labels; an unknown setting is refused."""
    from fsexport.train.augment import AugmentConfig, Augmenter

    frames = np.empty((64, 32, 32, 3), dtype=np.uint8)
    frames[:] = (200, 60, 30)
    labels = np.full((64, 2), np.nan, np.float32)
    labels[:, 0] = 0.5
    labels[::2, 1] = 0.3  # every other frame comes from a tilting clip
    augment = Augmenter(AugmentConfig(colour="stroke-only"), seed=4)
    places = np.random.default_rng(0).random((64, 3)).astype(np.float32)
    out, moved = augment.groups(frames, 16, places, labels)
    shift = np.abs(out.reshape(64, -1, 3).mean(1) - (200, 60, 30)).max(1)
    assert shift[::2].max() < 4, shift[::2]
    assert (shift[1::2] > 20).sum() >= 8, shift[1::2]
    assert moved.shape == places.shape and np.isfinite(moved).all()
    assert augment.for_labels(labels[:2]) is not augment
    assert augment.for_labels(labels[1:2]) is augment
    everything = Augmenter(AugmentConfig(), seed=4)
    assert everything.for_labels(labels) is everything
    assert Augmenter(AugmentConfig(colour="none"), seed=4).config.color_chance == 0.0
    with pytest.raises(ValueError, match="colour must be one of"):
        AugmentConfig(colour="some")


@pytest.mark.parametrize("flip", [True, False])
def test_mirroring_only_when_allowed(flip: bool) -> None:
    from fsexport.train.augment import AugmentConfig, Augmenter

    frame = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    frame[:, :, 16:] = 200  # bright right half
    augment = Augmenter(AugmentConfig(flip=flip), seed=1)
    mirrored = 0
    for _ in range(40):
        out = augment(frame)[0].astype(float)
        mirrored += out[:, :16].mean() > out[:, 16:].mean()
    assert (mirrored > 5) if flip else (mirrored == 0)


def test_augmented_copies_are_segments_that_windows_never_straddle() -> None:
    from fsexport.train.batches import make_pieces

    pieces = make_pieces([300, 130, 50], copies=2, segment=120, window=60)
    clean = [p for p in pieces if p.copy == 0]
    assert [(p.start, p.stop) for p in clean] == [(0, 300), (0, 130), (0, 50)]
    copy = [(p.video, p.start, p.stop) for p in pieces if p.copy == 1]
    assert copy == [(0, 0, 120), (0, 120, 240), (0, 240, 300), (1, 0, 130)]  # tail of 10 joined
    assert len([p for p in pieces if p.copy == 2]) == 4
    assert all(p.stop - p.start >= 60 for p in pieces if p.copy)


def test_augmented_copies_are_encoded_once_and_labelled_like_their_source() -> None:
    from fsexport.train.augment import Augmenter
    from fsexport.train.batches import WindowBatches
    from fsexport.train.dataset import DecodedVideo, WindowRef

    model = create_model(get_variant("tiny"))
    rng = np.random.default_rng(0)
    videos = [DecodedVideo(None, rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8),
                           np.arange(n) * 33.3, rng.random(n).astype(np.float32))
              for n in (130, 70)]
    cache = FeatureCache(model.encoder)
    batches = WindowBatches(model, videos, 60, cache, Augmenter(seed=0), copies=2, segment=64)
    batches.prepare()
    batches.prepare()  # every epoch asks again: nothing is augmented or encoded twice
    assert cache.computed == 3 * 200
    assert len(batches.pieces) == 2 + 2 * 3  # 130 frames -> segments 0-64, 64-130; 70 -> one
    piece = next(i for i, p in enumerate(batches.pieces) if p.copy == 2 and p.start == 64)
    ref = WindowRef(piece, 5)
    np.testing.assert_array_equal(batches.labels([ref])[0], videos[0].labels[69:129])
    clean = batches.features[0][69:129]
    assert not torch.equal(batches.features[piece][5:65], clean)  # its look was changed
    with torch.no_grad():
        assert batches.predict([ref], train_backbone=False).shape == (1, 60)


def test_synthetic_clips_carry_target_places_and_creators_clips_none(small_data: Path,
                                                                       tmp_path: Path) -> None:
    import shutil

    pair = find_pairs(small_data)[0]
    video = decode_pair(pair, fps=30.0, input_size=32)
    assert video.places is not None and video.places.shape == (len(video), 3)
    assert np.corrcoef(video.places[:, 1], video.labels)[0, 1] < -0.99  # classic: y is the pos
    assert decode_pair(pair, fps=30.0, input_size=32, crop="sbs-right").places is None
    own = tmp_path / "own.mp4"  # a creator's video and script: no synth record
    shutil.copy(pair.video, own)
    doc = json.loads(pair.funscript.read_text())
    doc["metadata"] = {"title": "mine"}
    own.with_suffix(".funscript").write_text(json.dumps(doc))
    assert decode_pair(find_pairs(tmp_path)[0], fps=30.0, input_size=32).places is None


def test_augmented_places_follow_the_crop_and_the_mirror() -> None:
    """Bright squares drawn at known places: after each draw the moved place is the centre of
    the square as augmented, within about a pixel; the frames are those of a plain call."""
    from fsexport.train.augment import AugmentConfig, Augmenter

    places = np.array([[0.5, 0.25, 0.08], [0.2, 0.7, 0.1], [0.8, 0.8, 0.06]], np.float32)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    for frame, (cx, cy, size) in zip(frames, places):
        r = int(size * 64)
        frame[int(cy * 64) - r:int(cy * 64) + r, int(cx * 64) - r:int(cx * 64) + r] = 255
    plain, with_places = Augmenter(AugmentConfig(), seed=5), Augmenter(AugmentConfig(), seed=5)
    moved_any = 0
    for _ in range(12):
        expected = plain(frames)
        out, moved = with_places.with_places(frames, places)
        np.testing.assert_array_equal(out, expected)
        for frame, place in zip(out, moved):
            grey = frame.astype(float).mean(-1)
            ys, xs = np.nonzero(grey > (grey.max() + grey.min()) / 2)
            assert abs((xs.mean() + 0.5) / 64 - place[0]) < 2.0 / 64
            assert abs((ys.mean() + 0.5) / 64 - place[1]) < 2.0 / 64
        moved_any += not np.allclose(moved, places, atol=1 / 64)
    assert moved_any >= 6


def test_frame_stage_learns_target_places_when_asked(small_data: Path, tmp_path: Path) -> None:
    config = TrainConfig(data=small_data, output=tmp_path / "places", epochs=1,
                         windows_per_epoch=4, batch_size=4, val_fraction=0.25, progress=False,
                         threads=1, frame_steps=6, frame_batch=16, frame_places=1.0)
    with_places = train(config, echo=lambda _: None).frame_stage
    assert with_places is not None and 0 < with_places.val_place_error < 1
    meta = json.loads((tmp_path / "places" / "checkpoint.json").read_text())
    assert meta["frame_stage"]["val_place_error"] == pytest.approx(with_places.val_place_error,
                                                                   abs=1e-4)
    config.output, config.frame_places = tmp_path / "plain", 0.0
    plain = train(config, echo=lambda _: None).frame_stage
    assert np.isnan(plain.val_place_error)


def test_hard_clips_are_randomized_clips_over_the_hard_backgrounds(tmp_path: Path) -> None:
    from fsexport.train.demo_model import (HARD_BACKGROUNDS, DemoRecipe, hard_seeds,
                                           render_hard_clips)
    from fsrun.files.funscript import read_funscript
    from fsrun.groundtruth.seeds import seed
    from fsrun.groundtruth.synth.clips import spec_from_truth, track_and_scene

    recipe = DemoRecipe(hard_clips=3, seconds=2.0, sizes=((32, 24),))
    render_hard_clips(recipe, tmp_path)
    specs = [spec_from_truth(read_funscript(t, strict=False)["metadata"])
             for t in sorted(tmp_path.glob("*.truth.funscript"))]
    assert len(specs) == 3 and {s.family for s in specs} == {"randomized"}
    assert len({(s.fps, s.codec) for s in specs}) == 3  # rates and codecs in turn
    seeds = [s.seed for s in specs]
    assert seeds == hard_seeds(3, 2.0, seed("train-hard")) and seeds[0] >= seed("train-hard")
    for spec in specs:  # drawn as the clip was written, at its own size
        assert track_and_scene(spec)[1].background_kind in HARD_BACKGROUNDS
    passed_over = [s for s in range(seeds[0], seeds[-1]) if s not in seeds]
    assert passed_over == [] or all(
        s not in hard_seeds(1, 2.0, s) for s in passed_over)  # each one's scene is not hard


def test_demo_rebuild_says_a_package_of_another_variant_in_one_line(built_tiny_package: Path,
                                                                    tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fsexport.train.demo_model import main

    result = CliRunner().invoke(main, [
        "--recipe", "stroke-roll", "--init-from", str(built_tiny_package), "--variant", "tiny-x2",
        "--randomized-clips", "2", "--classic-clips", "0", "--frame-steps", "1", "--epochs", "1",
        "--work", str(tmp_path / "work"), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "fsexport: error:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_demo_recipe_builds_the_recipes_it_starts_from_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fsexport.train import demo_model

    built: list[tuple[tuple[str, ...], Path | None, Path]] = []

    def build(recipe, root: Path, target: Path, threads: int = 0) -> Path:
        built.append((recipe.axes, recipe.init_from, root))
        return target / "demo.fsmodel"

    monkeypatch.setattr(demo_model, "build_recipe", build)
    name = "stroke-roll-colour"
    recipe = demo_model.with_base_package(name, demo_model.RECIPES[name], tmp_path)
    assert built == [(("stroke",), None, tmp_path / "stroke-roll" / "stroke"),
                     (("stroke", "roll"), tmp_path / "stroke-roll" / "stroke" / "demo.fsmodel",
                      tmp_path / "stroke-roll")]
    assert recipe.init_from == tmp_path / "stroke-roll" / "demo.fsmodel"
    given = tmp_path / "mine.fsmodel"
    mine = dataclasses.replace(demo_model.RECIPES[name], init_from=given)
    assert demo_model.with_base_package(name, mine, tmp_path).init_from == given
    assert len(built) == 2  # a package named: nothing built
