"""Every default a person sees, in one place: the command line's, the studio's (its API serves
them to the pages, which hold none of their own) and the library's.

Chosen against synthetic ground truth (benchmarks/results/*/experiments/stride/).
"""
from __future__ import annotations

from typing import Any

# Frames between window starts. The encoder runs once per frame whatever the stride; a smaller
# stride only runs the (cheap) head on more windows, and each position becomes a blend of
# 60/stride predictions. Against synthetic ground truth, a briefly trained model gains per-frame
# r 0.924 -> 0.947 from 30 to 15 and only 0.005 more at 10; a well trained one is unchanged
# (0.999). Head time at 15: 0.03 ms a frame.
DEFAULT_STRIDE = 15
# Positions (0-100) a peak must rise above its valleys to be kept.
DEFAULT_MIN_AMPLITUDE = 10.0
# Peaks and valleys alone draw straight strokes through curved motion (demo model: written r
# 0.946 against 0.999 per frame); adding Ramer-Douglas-Peucker points at 4 positions keeps
# r 0.997 with about 5 actions a second, where 1-2 cost 7-10 a second for +0.002.
DEFAULT_RDP_EPSILON = 4.0
DEFAULT_CROP = "full"  # the whole frame
DEFAULT_TRAIN_EPOCHS = 10  # epochs of a training started from the studio


def as_dict() -> dict[str, Any]:
    """The defaults a page needs, by the names of the options they fill."""
    return {"stride": DEFAULT_STRIDE, "min_amplitude": DEFAULT_MIN_AMPLITUDE,
            "rdp_epsilon": DEFAULT_RDP_EPSILON, "crop": DEFAULT_CROP, "raw": False,
            "invert": False, "stretch_percentile": None, "offset_ms": 0,
            "epochs": DEFAULT_TRAIN_EPOCHS}
