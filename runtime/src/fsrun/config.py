"""Where fsrun keeps its settings and caches, and which model is the user's default."""
from __future__ import annotations

import os
import sys
from pathlib import Path

MODEL_ENV = "FSRUN_MODEL"
CONFIG_ENV = "FSRUN_CONFIG_DIR"
CACHE_ENV = "FSRUN_CACHE_DIR"


def config_dir() -> Path:
    """User config folder ($FSRUN_CONFIG_DIR overrides; XDG, APPDATA or ~/Library otherwise)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "fsrun"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "fsrun"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "fsrun"


# The one cache root holds everything fsrun keeps between runs, each in its own folder.
CACHE_FOLDERS = {"embeddings": "per-frame embeddings per video and model (embedding_cache.py)",
                 "packages": "packages cut from .onnx models (onnx_door)",
                 "engines": "TensorRT engines ONNX Runtime's TensorRT backend builds",
                 "locks": "one lock file per embedding entry (locking.py)"}


def cache_root(override: Path | str | None = None) -> Path:
    """--cache-dir when given, else the user cache folder: the root of CACHE_FOLDERS."""
    return Path(override) if override is not None else cache_dir()


def cache_dir() -> Path:
    """User cache folder ($FSRUN_CACHE_DIR overrides): the default cache root."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "fsrun" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "fsrun"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fsrun"


def _default_file() -> Path:
    return config_dir() / "default_model"


def set_default_model(package_dir: Path) -> Path:
    """Record package_dir as the model fsrun uses when --model is absent."""
    target = _default_file()
    from fsrun.files.atomic import write_atomic  # noqa: PLC0415 - atomic imports errors only

    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, str(Path(package_dir).resolve()) + "\n")
    return target


def get_default_model() -> Path | None:
    """The model recorded by `fsexport build`, or None."""
    target = _default_file()
    if not target.is_file():
        return None
    text = target.read_text(encoding="utf-8").strip()
    return Path(text) if text else None


def demo_model_dir() -> Path:
    """The small demo model that ships inside the fsrun distribution."""
    return Path(__file__).resolve().parent / "demo" / "demo.fsmodel"
