"""fsexport's seed ranges in the one seed table (fsrun.groundtruth.seeds): the demo model's
training clips, int8 calibration, and the held-out clips its recipes are graded on. Import
`seed` from here: importing registers the ranges."""
from __future__ import annotations

from fsrun.groundtruth.seeds import SeedRange, register, seed, seed_range

__all__ = ["seed", "seed_range"]

register({
    # Training (fsexport.train.demo_model builds the bundled demo from these).
    "train-classic": SeedRange("classic", 0, 1_000, "demo model training, classic family"),
    "train-randomized": SeedRange("randomized", 100_000, 100_000,
                                  "demo model training, randomized family"),
    "train-hard": SeedRange("randomized", 200_000, 100_000,
                            "extra demo training clips over hard backgrounds (sought from here)"),
    # Held out: graded, never trained or calibrated on.
    "calibration": SeedRange("classic", 800_000, 1_000, "int8 calibration clips (fsexport)"),
    "held-out-classic": SeedRange("classic", 900_000, 10_000,
                                  "demo recipe grading (demo_model), classic"),
    "held-out-randomized": SeedRange("randomized", 920_000, 10_000,
                                     "demo recipe grading (demo_model), randomized"),
})
