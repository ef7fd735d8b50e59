"""`python -m fsexport.train.demo_model` end to end, at a toy size: the stroke-roll recipe builds
the stroke recipe first and fine-tunes its package, then grades every axis of the result on the
held-out grids of both families (the command that rebuilds the bundled demo, minus the hours)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsexport.train import demo_model
from fsrun.model.package import load_package

# Grading 96 held-out clips of 12 s: beyond the default suite's budget (CI's -m long step).
pytestmark = pytest.mark.long

TOY = dict(variant="tiny", randomized_clips=4, classic_clips=0, seconds=3.0, sizes=((64, 48),),
           frame_steps=2, epochs=1, windows_per_epoch=4, batch_size=2, augment_copies=1,
           val_fraction=0.5)


def test_stroke_roll_recipe_builds_its_stroke_package_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes = {name: dataclasses.replace(recipe, **TOY)
               for name, recipe in demo_model.RECIPES.items()}
    monkeypatch.setattr(demo_model, "RECIPES", recipes)
    work, out = tmp_path / "work", tmp_path / "out"
    result = CliRunner().invoke(demo_model.main, ["--recipe", "stroke-roll", "--work", str(work),
                                                  "--output", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "first the stroke recipe, which stroke-roll fine-tunes" in result.output
    base = load_package(work / "stroke" / "demo.fsmodel")
    built = load_package(out / "demo.fsmodel")
    assert tuple(base.meta.axis_names) == ("stroke",)
    assert tuple(built.meta.axis_names) == ("stroke", "roll")
    options = built.meta.provenance["training"]["options"]
    assert options["init_from"] == "demo.fsmodel" and options["augment_colour"] == "none"
    assert list(work.glob("data/*.roll.truth.funscript"))  # half of the clips tilt
    lines = result.output.splitlines()
    start = lines.index("[")
    rows = json.loads("\n".join(lines[start:lines.index("]", start) + 1]))
    graded = {(row["family"], row.get("axis", "stroke")) for row in rows}
    assert graded == {(f, a) for f in demo_model.FAMILIES for a in ("stroke", "roll")}
    assert not any(abs(row["r"]) > 1 for row in rows)
    assert "randomized family, roll, held-out r" in result.output


def test_blend_recipe_takes_the_encoder_back_towards_the_package_its_fine_tune_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes = {name: dataclasses.replace(recipe, **TOY)
               for name, recipe in demo_model.RECIPES.items()}
    recipes["stroke-roll-blend"] = dataclasses.replace(recipes["stroke-roll-blend"], hard_clips=1,
                                                       frame_steps=0)
    monkeypatch.setattr(demo_model, "RECIPES", recipes)
    work = tmp_path / "work"
    recipe = demo_model.with_base_package("stroke-roll-blend", recipes["stroke-roll-blend"], work)
    mixed = work / "stroke-roll-mixed"
    assert recipe.init_from == mixed / "stroke-roll" / "demo.fsmodel"  # where mixed started
    assert recipe.blend_with == mixed / "checkpoints" / "checkpoint.safetensors"
    built = load_package(demo_model.build_recipe(recipe, work, tmp_path / "out"))
    options = built.meta.provenance["training"]["options"]
    assert options["blend_with"] == "checkpoint.safetensors" and options["blend_share"] == 0.5
    assert options["frame_steps"] == 0 and tuple(built.meta.axis_names) == ("stroke", "roll")
    # a blend recipe given a package must be given the fine-tune too
    result = CliRunner().invoke(demo_model.main, ["--recipe", "stroke-roll-blend", "--init-from",
                                                  str(recipe.init_from)])
    assert result.exit_code == 2 and "--blend-with" in result.output


def test_stack_recipe_builds_each_package_once_and_stacks_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipes = {name: dataclasses.replace(recipe, **TOY)
               for name, recipe in demo_model.RECIPES.items()}
    monkeypatch.setattr(demo_model, "RECIPES", recipes)
    work = tmp_path / "work"
    stacked = load_package(demo_model.build_stack(recipes["stroke-roll-stack"], work,
                                                  tmp_path / "out"))
    stroke = load_package(work / "stroke" / "demo.fsmodel")
    roll = load_package(work / "stroke-roll-tilting" / "demo.fsmodel")
    chain = work / "stroke-roll-tilting" / "stroke-roll-mixed" / "stroke-roll"
    assert (chain / "demo.fsmodel").is_dir() and not (chain / "stroke").exists()  # built once
    parts = stacked.meta.provenance["stack"]
    assert [(p["package"], p["model_hash"], p["axes"]) for p in parts] == [
        ("stroke", stroke.model_hash, ["stroke"]),
        ("stroke-roll-tilting", roll.model_hash, ["roll"])]
    assert tuple(stacked.meta.axis_names) == ("stroke", "roll")
    # the recipe trains nothing of its own: a training option is refused before any work
    result = CliRunner().invoke(demo_model.main, ["--recipe", "stroke-roll-stack", "--epochs",
                                                  "3", "--work", str(tmp_path / "none")])
    assert result.exit_code == 2 and "trains nothing" in result.output
    assert not (tmp_path / "none").exists()
