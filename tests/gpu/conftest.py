"""GPU tests use the package `fsexport build` writes (model.onnx, fp16 graphs, parity)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_package(built_tiny_package: Path) -> Path:
    return built_tiny_package
