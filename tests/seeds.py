"""The tests' seed ranges in the one seed table (fsrun.groundtruth.seeds), registered by
tests/conftest.py before any test runs (with fsexport's and the benchmarks', so the table the
tests check is the whole one)."""
from __future__ import annotations

from fsrun.groundtruth.seeds import SeedRange, register

TEST_SEEDS: dict[str, SeedRange] = {
    "tests-train-classic": SeedRange("classic", 1_000, 1_000,
                                     "the tests' end-to-end training, classic clips"),
    "tests-train-randomized": SeedRange("randomized", 2_000, 1_000,
                                        "the tests' end-to-end training, randomized clips"),
    "tests-held-out-e2e": SeedRange("classic", 700_000, 1_000,
                                    "the tests' end-to-end training, held-out clips"),
    "tests-held-out-randomized": SeedRange("randomized", 820_000, 1_000,
                                           "the tests' held-out clips of the demo, randomized"),
    "tests-held-out-classic": SeedRange("classic", 840_000, 1_000,
                                        "the tests' held-out clips of the demo, classic"),
    "tests-studio": SeedRange("classic", 860_000, 1_000,
                              "the studio's tests: a library to script and edit"),
    "independent-grid": SeedRange("independent", 5_000_000, 1_000_000,
                                  "the independent renderer's grid (tests/groundtruth)"),
    "independent-wide": SeedRange("independent", 6_000_000, 1_000_000,
                                  "the independent renderer's wide sets"),
}


def register_all() -> None:
    """Every package's ranges in the table: fsexport's and the benchmarks' by importing their
    seeds modules, then the tests' own."""
    import benchmarks.seeds  # noqa: F401, PLC0415
    import fsexport.seeds  # noqa: F401, PLC0415

    register(TEST_SEEDS)
