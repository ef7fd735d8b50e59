"""fsrun: run funscript video models with no deep-learning framework."""
from __future__ import annotations

__version__ = "0.1.0"
