"""`fsexport import FILE`: pick the door from the file type (a table), write the package."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from fsrun.errors import UsageError
from fsrun.tables import load

from fsexport.build_config import BuildResult, Log, stderr_log
from fsexport.extras import require_torch
from fsexport.importers.config import ImportConfig

# File suffix -> "module:function" of the door that imports it (imported when used).
DOORS = {
    ".h5": "fsexport.importers.keras_import:import_keras",
    ".hdf5": "fsexport.importers.keras_import:import_keras",
    ".keras": "fsexport.importers.keras_import:import_keras",
    ".onnx": "fsexport.importers.onnx_import:import_onnx",
}
ONNX_DOOR = "fsexport.importers.onnx_import"  # the one door without PyTorch


def door_for(source: Path) -> Callable[[ImportConfig, Log], BuildResult]:
    target = DOORS.get(Path(source).suffix.lower())
    if target is None:
        raise UsageError(f"{source}: unknown model file type; expected one of "
                         f"{', '.join(sorted(DOORS))}")
    if target.split(":")[0] != ONNX_DOOR:  # the Keras door maps the file onto timm's blocks
        require_torch(f"fsexport import {Path(source).name}")
    return load(target)


def import_model(config: ImportConfig, log: Log = stderr_log) -> BuildResult:
    if not Path(config.source).is_file():
        raise UsageError(f"{config.source}: file not found")
    door = door_for(config.source)
    if config.split_at is not None and door.__name__ != "import_onnx":
        raise UsageError("--split-at applies to ONNX files only")
    if config.check_keras and door.__name__ != "import_keras":
        raise UsageError("--check-keras applies to Keras files only")
    return door(config, log)
