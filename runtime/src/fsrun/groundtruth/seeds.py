"""Every seed range the project renders clips from, in one table: which family, what for.

A clip of the synthetic renderer is a function of (family, seed, rate, codec, size): the seed
draws its track and its scene. A model graded on clips it trained on, or an int8 encoder graded
on its calibration clips, would look better than it is; so no two ranges overlap, whatever their
family or purpose (register() refuses an overlap; tests/groundtruth/test_seeds.py checks the
whole table), and every caller takes its seeds from the table: `seed("held-out-randomized", i)`.
The runtime holds only the range it uses itself; fsexport, the benchmarks and the tests register
theirs from their own seeds modules.
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


# The runtime's own ranges: what `fsrun demo` draws from. The packages beside it register
# theirs (fsexport.seeds: training, calibration, recipe grading; benchmarks.seeds; the tests'
# tests/seeds.py) into this one table, so no two ranges anywhere overlap (register refuses it).
SEEDS: dict[str, SeedRange] = {
    "demo": SeedRange("any", 1_000_000, 1_000_000,
                      "`fsrun demo`: a fresh clip, drawn at random from here"),
}


def register(ranges: dict[str, SeedRange]) -> None:
    """Add a package's ranges to the table; ValueError for a name taken by another range, or a
    range that overlaps one already there."""
    for name, found in ranges.items():
        if name in SEEDS:
            if SEEDS[name] == found:
                continue  # registered already (a module imported twice)
            raise ValueError(f"seed range {name!r} is registered already")
        clash = next((other for other, r in SEEDS.items() if r.overlaps(found)), None)
        if clash is not None:
            raise ValueError(f"seed range {name!r} overlaps {clash!r}")
        SEEDS[name] = found


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
