"""`fsexport stack`: packages side by side in one, each axis written as its own part writes it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from fsexport.cli import main as fsexport_main
from fsrun import cli
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package, sha256_file


@pytest.fixture(scope="module")
def other_two_axis_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stroke+roll package whose encoder and head share nothing with axis_packages'."""
    from fsexport.build import BuildConfig, build_package_from_model  # noqa: PLC0415
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    variant = get_variant("tiny")
    model = create_model(variant, seed=11, axes=2)
    model.axis_names = ("stroke", "roll")
    config = BuildConfig(variant="tiny", output=tmp_path_factory.mktemp("other"),
                         name="other.fsmodel", set_default=False, fp16=False, composite=False)
    return build_package_from_model(model, variant, config, trained=False,
                                    log=lambda _: None).path


def _actions(video: Path, model: Path, folder: Path) -> dict[str, list]:
    """fsrun's actions per axis for a copy of video in folder."""
    folder.mkdir(parents=True)
    copy = Path(shutil.copy(video, folder / video.name))
    assert cli.main([str(copy), "-m", str(model), "-q", "--no-cache"]) == 0
    return {path.name.removeprefix(copy.stem).removesuffix(".funscript").strip(".") or "stroke":
            read_funscript(path)["actions"] for path in folder.glob("*.funscript")}


def test_each_axis_is_what_its_part_writes(axis_packages, other_two_axis_package: Path,
                                           roll_clip: Path, tmp_path: Path) -> None:
    one, _ = axis_packages
    result = CliRunner().invoke(fsexport_main, ["stack", str(one), str(other_two_axis_package),
                                                "-o", str(tmp_path), "--name", "s.fsmodel"])
    assert result.exit_code == 0, result.output
    assert f"roll from {other_two_axis_package}" in result.output
    stacked = load_package(tmp_path / "s.fsmodel")
    assert stacked.meta.axes == ["stroke", "roll"]
    assert stacked.meta.embedding_dim == 2 * load_package(one).meta.embedding_dim
    parts = stacked.meta.provenance["stack"]
    assert [p["axes"] for p in parts] == [["stroke"], ["roll"]]
    assert parts[0]["model_hash"] == load_package(one).model_hash
    assert stacked.meta.parity["max_abs_diff_vs_parts"]["head.onnx"] <= 1e-5
    mine = _actions(roll_clip, tmp_path / "s.fsmodel", tmp_path / "stacked")
    alone = _actions(roll_clip, one, tmp_path / "one")
    other = _actions(roll_clip, other_two_axis_package, tmp_path / "other")
    assert set(mine) == {"stroke", "roll"} and set(alone) == {"stroke"}
    assert mine["stroke"] == alone["stroke"] and mine["roll"] == other["roll"]
    assert mine["stroke"] != other["stroke"]  # the parts differ: the test can tell them apart
    # taken the other way round, the stroke is the other package's
    assert CliRunner().invoke(fsexport_main, [
        "stack", str(other_two_axis_package), str(one), "-o", str(tmp_path)]).exit_code == 2


def test_a_stack_refuses_in_one_line(axis_packages, other_two_axis_package: Path,
                                     tmp_path: Path) -> None:
    one, two = axis_packages
    runner = CliRunner()

    def refused(*args: str) -> str:
        result = runner.invoke(fsexport_main, ["stack", *args, "-o", str(tmp_path)])
        assert result.exit_code in (2, 4, 5), result.output
        assert result.output.count("\n") == 1, result.output
        return result.output

    assert "two packages or more" in refused(str(one))
    assert "gives no axis" in refused(str(two), str(other_two_axis_package))
    assert "no package gives pitch" in refused(str(one), str(two), "--axes", "stroke,pitch")
    assert "start with the stroke" in refused(str(one), str(two), "--axes", "roll")
    assert "not found" in refused(str(one), str(tmp_path / "none.fsmodel"))
    assert "invalid package name" in refused(str(one), str(two), "--name", "../up.fsmodel")
    assert not (tmp_path.parent / "up.fsmodel").exists()
    # a part whose file was cut off: found before anything is written
    damaged = Path(shutil.copytree(two, tmp_path / "damaged.fsmodel"))
    encoder = damaged / "encoder.onnx"
    encoder.write_bytes(encoder.read_bytes()[:1000])
    assert "damaged" in refused(str(one), str(damaged))
    # a part that says another window than its parts'
    other_window = Path(shutil.copytree(two, tmp_path / "window.fsmodel"))
    meta = json.loads((other_window / "meta.json").read_text())
    (other_window / "meta.json").write_text(json.dumps({**meta, "fps": 25.0}))
    assert "fps 25.0 differs" in refused(str(one), str(other_window))
    # a part exported at another ONNX opset (its nodes mean what their opset says)
    older = Path(shutil.copytree(two, tmp_path / "older.fsmodel"))
    head = onnx.load(str(older / "head.onnx"))
    head.opset_import[0].version = 16
    onnx.save(head, str(older / "head.onnx"))
    meta = json.loads((older / "meta.json").read_text())
    meta["files"]["head.onnx"] = sha256_file(older / "head.onnx")
    (older / "meta.json").write_text(json.dumps(meta))
    assert "opset 16" in refused(str(one), str(older))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.fsmodel", "older.fsmodel",
                                                          "window.fsmodel"]
    # an existing package is kept without --force, replaced with it (a symlinked part is fine)
    (tmp_path / "link.fsmodel").symlink_to(two)
    assert runner.invoke(fsexport_main, ["stack", str(one), str(tmp_path / "link.fsmodel"),
                                         "-o", str(tmp_path)]).exit_code == 0
    made = tmp_path / "one+link.fsmodel"
    assert load_package(made).meta.axes == ["stroke", "roll"]
    # --output ending in .fsmodel names the package itself
    assert runner.invoke(fsexport_main, ["stack", str(one), str(two), "-o",
                                         str(tmp_path / "sub" / "named.fsmodel")]).exit_code == 0
    assert load_package(tmp_path / "sub" / "named.fsmodel").meta.axes == ["stroke", "roll"]
    assert "--force" in refused(str(one), str(two), "--name", made.name)
    before = load_package(made).model_hash
    assert runner.invoke(fsexport_main, ["stack", str(one), str(other_two_axis_package),
                                         "-o", str(tmp_path), "--name", made.name,
                                         "--force"]).exit_code == 0
    assert load_package(made).model_hash != before


def test_a_stack_takes_an_int8_encoder_and_runs_it(axis_packages, other_two_axis_package: Path,
                                                   roll_clip: Path, tmp_path: Path) -> None:
    from fsexport.calibration import CalibrationConfig, SynthClips  # noqa: PLC0415
    from fsexport.quantize import QuantizeConfig, quantize_package  # noqa: PLC0415
    from fsexport.stack import StackConfig, stack_packages  # noqa: PLC0415

    target = tmp_path / "s.fsmodel"
    stack_packages(StackConfig(parts=(axis_packages[0], other_two_axis_package), output=target),
                   log=lambda _: None)
    calibration = CalibrationConfig(frames=16, synth=SynthClips(count=2, seconds=2.5,
                                                                size=(96, 72)))
    record = quantize_package(target, QuantizeConfig(calibration=calibration),
                              log=lambda _: None)
    assert load_package(target).has_graph("encoder", "int8")
    assert record["drift_vs_fp32"]["position_max_abs_diff"] >= 0
    copy = Path(shutil.copy(roll_clip, tmp_path / roll_clip.name))
    assert cli.main([str(copy), "-m", str(target), "-q", "--no-cache", "--precision",
                     "int8"]) == 0
    assert read_funscript(copy.with_suffix(".roll.funscript"))["actions"]


def test_a_stack_is_no_encoder_to_start_training_from(axis_packages,
                                                      other_two_axis_package: Path,
                                                      tmp_path: Path) -> None:
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.stack import StackConfig, stack_packages  # noqa: PLC0415
    from fsexport.train.warm_start import load_package_encoder  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415
    from fsrun.errors import UsageError  # noqa: PLC0415

    target = tmp_path / "s.fsmodel"
    stack_packages(StackConfig(parts=(axis_packages[0], other_two_axis_package), output=target),
                   log=lambda _: None)
    model = create_model(get_variant("tiny"), seed=0)
    with pytest.raises(UsageError, match="2 packages side by side"):
        load_package_encoder(model.encoder, target)
    load_package_encoder(model.encoder, axis_packages[0])  # a part is


def test_the_parity_check_counts_a_nan_in_one_graph_as_a_difference() -> None:
    import numpy as np  # noqa: PLC0415
    from fsexport.stack import largest_difference  # noqa: PLC0415

    assert largest_difference(np.array([1.0, np.nan]), np.array([1.5, np.nan])) == 0.5
    assert largest_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == np.inf
