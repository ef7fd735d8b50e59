"""`fsexport import MODEL.onnx`: the ONNX door of the runtime (fsrun.onnx_door: graph surgery,
checked against the original graph in ONNX Runtime), writing the package where the user says and
making it fsrun's default. No PyTorch on this path."""
from __future__ import annotations

import time
from pathlib import Path

from fsrun.config import set_default_model
from fsrun.onnx_door import OnnxImport
from fsrun.onnx_door import import_onnx as cut_onnx

from fsexport.build_config import BuildResult, Log, package_dir_for, stderr_log
from fsexport.importers.config import ImportConfig


def import_onnx(config: ImportConfig, log: Log = stderr_log) -> BuildResult:
    target = package_dir_for(config.build_config())
    started = time.perf_counter()
    meta = cut_onnx(OnnxImport(source=Path(config.source), target=target, fps=config.fps,
                               fp16=config.fp16, split_at=config.split_at, force=config.force),
                    log)
    timings = {"import": time.perf_counter() - started}
    if config.set_default:
        set_default_model(target)
        log(f"default model for fsrun: {target}")
    log(f"wrote {target}")
    return BuildResult(path=target, meta=meta, timings=timings)
