"""What counts as a number a run can use: a real int or float, not a bool, not NaN, not
infinite. One rule for every place a number enters (options, meta.json, the studio's API)."""
from __future__ import annotations

import math
from typing import Any


def is_finite(value: Any) -> bool:
    """Whether value is a finite real number (True, "30", NaN, inf and 1e999 are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)
