"""Every seed range the project renders clips from, in one table: which family, what for.

A clip of the synthetic renderer is a function of (family, seed, rate, codec, size): the seed
draws its track and its scene. A model graded on clips it trained on, or an int8 encoder graded
on its calibration clips, would look better than it is; so no two ranges overlap, whatever their
family or purpose (tests/groundtruth/test_seeds.py checks it), and every caller takes its seeds
from here: `seed("held-out-randomized", i)`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedRange:
    family: str  # classic, randomized, independent (the tests' renderer) or any
    first: int  # the range's first seed
    size: int  # how many seeds it holds
    purpose: str  # what the clips are for, in words

    def __post_init__(self) -> None:
        if self.first < 0 or self.size < 1:
            raise ValueError(f"bad seed range {self.first}+{self.size}")

    @property
    def end(self) -> int:
        return self.first + self.size

    def overlaps(self, other: SeedRange) -> bool:
        return self.first < other.end and other.first < self.end


SEEDS: dict[str, SeedRange] = {
    # Training (fsexport.train.demo_model builds the bundled demo from these).
    "train-classic": SeedRange("classic", 0, 1_000, "demo model training, classic family"),
    "tests-train-classic": SeedRange("classic", 1_000, 1_000,
                                     "the tests' end-to-end training, classic clips"),
    "tests-train-randomized": SeedRange("randomized", 2_000, 1_000,
                                        "the tests' end-to-end training, randomized clips"),
    "train-randomized": SeedRange("randomized", 100_000, 100_000,
                                  "demo model training, randomized family"),
    "train-hard": SeedRange("randomized", 200_000, 100_000,
                            "extra demo training clips over hard backgrounds (sought from here)"),
    # Held out: graded, never trained or calibrated on.
    "tests-held-out-e2e": SeedRange("classic", 700_000, 1_000,
                                    "the tests' end-to-end training, held-out clips"),
    "calibration": SeedRange("classic", 800_000, 1_000, "int8 calibration clips (fsexport)"),
    "tests-held-out-randomized": SeedRange("randomized", 820_000, 1_000,
                                           "the tests' held-out clips of the demo, randomized"),
    "tests-held-out-classic": SeedRange("classic", 840_000, 1_000,
                                        "the tests' held-out clips of the demo, classic"),
    "tests-studio": SeedRange("classic", 860_000, 1_000,
                              "the studio's tests and benchmarks: a library to script and edit"),
    "held-out-classic": SeedRange("classic", 900_000, 10_000,
                                  "demo recipe grading (demo_model), classic"),
    "stride-accuracy": SeedRange("classic", 910_000, 1_000,
                                 "benchmarks stride-accuracy clips"),
    "held-out-randomized": SeedRange("randomized", 920_000, 10_000,
                                     "demo recipe grading (demo_model), randomized"),
    "int8-isa": SeedRange("classic", 930_000, 1_000,
                          "frames for the int8 encoder on other CPUs (benchmarks int8-isa)"),
    "wide-randomized": SeedRange("randomized", 940_000, 20_000,
                                 "benchmarks demo-wide, randomized (240 clips a run)"),
    "wide-classic": SeedRange("classic", 960_000, 20_000,
                              "benchmarks demo-wide, classic (240 clips a run)"),
    "int8-held-out": SeedRange("classic", 980_000, 10_000,
                               "int8 experiments: graded and cosine clips"),
    "demo": SeedRange("any", 1_000_000, 1_000_000,
                      "`fsrun demo`: a fresh clip, drawn at random from here"),
    "independent-grid": SeedRange("independent", 5_000_000, 1_000_000,
                                  "the independent renderer's grid (tests/groundtruth)"),
    "independent-wide": SeedRange("independent", 6_000_000, 1_000_000,
                                  "the independent renderer's wide sets"),
}


def seed_range(name: str) -> SeedRange:
    try:
        return SEEDS[name]
    except KeyError:
        raise KeyError(f"no seed range {name!r}; ranges: {', '.join(SEEDS)}") from None


def seed(name: str, index: int = 0) -> int:
    """The index-th seed of a range; IndexError past its end (take a larger range instead of
    running into the next one)."""
    found = seed_range(name)
    if not 0 <= index < found.size:
        raise IndexError(f"seed {index} is outside {name!r} ({found.size} seeds)")
    return found.first + index
