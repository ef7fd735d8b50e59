"""The benchmarks' seed ranges in the one seed table (fsrun.groundtruth.seeds). Import `seed`
and `seed_range` from here: importing registers the ranges (and fsexport's, which some
benchmarks grade against)."""
from __future__ import annotations

import fsexport.seeds  # noqa: F401 - the held-out ranges some benchmarks share
from fsrun.groundtruth.seeds import SeedRange, register, seed, seed_range

__all__ = ["seed", "seed_range"]

register({
    "stride-accuracy": SeedRange("classic", 910_000, 1_000,
                                 "benchmarks stride-accuracy clips"),
    "int8-isa": SeedRange("classic", 930_000, 1_000,
                          "frames for the int8 encoder on other CPUs (benchmarks int8-isa)"),
    "wide-randomized": SeedRange("randomized", 940_000, 20_000,
                                 "benchmarks demo-wide, randomized (240 clips a run)"),
    "wide-classic": SeedRange("classic", 960_000, 20_000,
                              "benchmarks demo-wide, classic (240 clips a run)"),
    "int8-held-out": SeedRange("classic", 980_000, 10_000,
                               "int8 experiments: graded and cosine clips"),
    "roll-augmentation": SeedRange("randomized", 890_000, 1_000,
                                   "benchmarks roll-augmentation: tilting clips"),
    "studio": SeedRange("classic", 870_000, 1_000,
                        "benchmarks studio: a library to script and edit"),
})
