"""Tests that name a run's options in one call: `split(video=..., model=..., stride=10)` sorts
them into the SessionSpec, VideoRequest and RunHooks they belong to (each type's own fields)."""
from __future__ import annotations

import dataclasses
from typing import Any

from fsrun.run.request import RunHooks, SessionSpec, VideoRequest

_TYPES = (SessionSpec, VideoRequest, RunHooks)


def split(**options: Any) -> tuple[SessionSpec, VideoRequest, RunHooks]:
    parts: list[dict[str, Any]] = [{}, {}, {}]
    for name, value in options.items():
        owner = next((i for i, kind in enumerate(_TYPES)
                      if name in {f.name for f in dataclasses.fields(kind)}), None)
        if owner is None:
            raise TypeError(f"no run option named {name!r}")
        parts[owner][name] = value
    return SessionSpec(**parts[0]), VideoRequest(**parts[1]), RunHooks(**parts[2])
