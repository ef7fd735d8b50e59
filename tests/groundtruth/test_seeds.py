"""The one seed table: no two ranges overlap, and no code picks a clip seed of its own."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from fsrun.groundtruth.seeds import SEEDS, SeedRange, seed, seed_range

ROOT = Path(__file__).resolve().parents[2]
# A literal of 100_000 or more given as a seed (seed=..., SEED = ..., seed + ..., ... + seed):
# a clip seed chosen outside the table.
BIG = r"\b(?:\d{3}(?:_?\d{3})+|\d{1,2}(?:_?\d{3}){2,})\b"
LOCAL_SEED = re.compile(rf"seeds?\w*\W{{0,3}}\s*[=:+]\s*\(?{BIG}|{BIG}\s*\+\s*[\w.]*seed",
                        re.IGNORECASE)


def test_no_two_ranges_overlap() -> None:
    clashes = [(a, b) for (a, ra), (b, rb) in itertools.combinations(SEEDS.items(), 2)
               if ra.overlaps(rb)]
    assert clashes == []


def test_every_purpose_has_its_range() -> None:
    for name in ("train-classic", "train-randomized", "calibration", "held-out-classic",
                 "held-out-randomized", "tests-held-out-classic", "tests-held-out-randomized",
                 "wide-classic", "wide-randomized", "int8-held-out", "independent-grid",
                 "independent-wide", "demo"):
        assert seed_range(name).size > 0


def test_the_runtime_holds_only_its_own_ranges() -> None:
    """Test and benchmark ranges live beside their code; the shipped table keeps `fsrun demo`'s."""
    import ast

    source = (ROOT / "runtime" / "src" / "fsrun" / "groundtruth" / "seeds.py").read_text()
    names = {node.value for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value in SEEDS}
    assert names == {"demo"}


def test_a_range_that_overlaps_is_refused_at_registration() -> None:
    from fsrun.groundtruth.seeds import register

    with pytest.raises(ValueError, match="overlaps 'demo'"):
        register({"late-comer": SeedRange("classic", 1_500_000, 10, "would clash")})
    assert "late-comer" not in SEEDS


def test_overlap_is_detected() -> None:
    """The check above can fail: two ranges that share one seed overlap."""
    assert SeedRange("classic", 0, 10, "a").overlaps(SeedRange("randomized", 9, 5, "b"))
    assert not SeedRange("classic", 0, 10, "a").overlaps(SeedRange("classic", 10, 5, "b"))


def test_seeds_past_a_range_are_refused() -> None:
    assert seed("calibration", 0) == seed_range("calibration").first
    with pytest.raises(IndexError):
        seed("calibration", seed_range("calibration").size)
    with pytest.raises(KeyError, match="no seed range"):
        seed("nowhere")


# Seeds of something other than clips: the Keras fixtures' random weights.
NOT_CLIP_SEEDS = {"tests/export/keras_fixtures/make_fixtures.py"}


def test_no_code_picks_a_clip_seed_outside_the_table() -> None:
    tables = {ROOT / "runtime" / "src" / "fsrun" / "groundtruth" / "seeds.py",
              ROOT / "export" / "src" / "fsexport" / "seeds.py", ROOT / "benchmarks" / "seeds.py",
              ROOT / "tests" / "seeds.py"}
    found = []
    for folder in ("runtime/src", "export/src", "benchmarks", "tests", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in tables or path == Path(__file__).resolve() or \
                    path.relative_to(ROOT).as_posix() in NOT_CLIP_SEEDS:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LOCAL_SEED.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
    assert LOCAL_SEED.search("seed=930_000") and LOCAL_SEED.search("700_000 + cfg.seed")
    assert LOCAL_SEED.search("HELD_OUT_SEED = 920_000") and LOCAL_SEED.search("SEED: 5000000")
    assert not LOCAL_SEED.search("seed=1), tmp_path, 8_192)")
