"""fsrun: run funscript video models with no deep-learning framework."""
from __future__ import annotations

import os

# ONNX Runtime's documented opt-out of its usage telemetry (POSIX builds send it since 2026),
# set before onnxruntime is imported anywhere; a user's own setting wins.
os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")

__version__ = "0.1.0"
