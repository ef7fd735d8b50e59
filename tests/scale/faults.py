"""Faults the Ray tests install through RunHooks.backend_factory (shipped code has none):
pickled by value into the workers, so they need not import the tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fsrun.backends import create_backend

EXIT_CODE = 70  # what the killed worker's process exits with


class DiesMidVideo:
    """A backend factory whose encoders kill their process on the second batch, mid-video; only
    the first worker that renames the marker file away (only one can) dies."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __call__(self, name: str, graph: Path, options: Any) -> Any:
        backend = create_backend(name, graph, options)
        return _Dying(backend, self.marker) if "encoder" in Path(graph).name else backend


class _Dying:
    def __init__(self, backend: Any, marker: Path):
        self.backend, self.marker, self.calls = backend, marker, 0

    def run(self, frames: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            try:
                os.rename(self.marker, self.marker.with_name(self.marker.name + ".fired"))
            except OSError:
                pass  # another worker took the fault already
            else:
                os._exit(EXIT_CODE)
        return self.backend.run(frames)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)
