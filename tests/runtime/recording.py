"""A backend factory for tests that starts real backends and records which graphs it started."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fsrun.backends import create_backend


class RecordingFactory:
    """Real backends; remembers the graph file name of each backend it starts."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def __call__(self, name: str, onnx_path: Path, options: Any) -> Any:
        self.started.append(Path(onnx_path).name)
        return create_backend(name, onnx_path, options)
