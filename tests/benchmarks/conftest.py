"""Benchmark tests use the package `fsexport build` writes: the baseline runs its model.onnx."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_package(built_tiny_package: Path) -> Path:
    return built_tiny_package
