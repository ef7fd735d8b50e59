"""`fsexport build`: model -> verified package directory (ONNX graphs + meta.json)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from fsexport.build_config import (BuildConfig, BuildResult, Log, package_dir_for,  # noqa: F401
                                   stderr_log)
from fsrun.axes import SINGLE
from fsexport.model import BackboneSource, WindowModel, calibrate_batchnorm, create_model
from fsexport.onnx_export import export_graph
from fsexport.parity import ParityReport, check_composite, check_graph
from fsexport.variants import Variant, get_variant
from fsexport.weights import load_backbone_weights, load_checkpoint
from fsrun.config import set_default_model
from fsrun.model.package import (GRAPH_FILES, META_NAME, ModelMeta, load_package,
                           refuse_existing, sha256_file, write_package_dir)



def build_package(config: BuildConfig, log: Log = stderr_log) -> BuildResult:
    """Create the model from the variant table and weights, then export and verify it."""
    variant = get_variant(config.variant).with_overrides(config.input_size, config.window, config.fps)
    target = package_dir_for(config)
    refuse_existing(target, config.force)
    started = time.perf_counter()
    source = BackboneSource(pretrained=config.pretrained, weights_file=None)
    training = _training_config(config.checkpoint) if config.checkpoint is not None else None
    axes = tuple((training or {}).get("axes") or SINGLE)  # what the checkpoint's head learned
    model = create_model(variant, source, seed=config.seed, axes=len(axes))
    model.axis_names = axes
    if config.backbone_weights is not None:
        load_backbone_weights(model.encoder.backbone, config.backbone_weights)
    random_backbone = not config.pretrained and config.backbone_weights is None
    if random_backbone:
        calibrate_batchnorm(model.encoder, seed=config.seed)  # a checkpoint overrides these
    provenance: dict = {"seed": config.seed, "pretrained_backbone": config.pretrained,
                        "backbone_weights": file_identity(config.backbone_weights),
                        "batchnorm_calibrated_on_random_frames": random_backbone}
    if config.checkpoint is not None:
        backbone_given = config.pretrained or config.backbone_weights is not None
        load_checkpoint(model, config.checkpoint, backbone_given=backbone_given)
        provenance["checkpoint"] = file_identity(config.checkpoint)
        provenance["training"] = training
    trained = config.checkpoint is not None
    if not trained:
        log("WARNING: no --checkpoint given: the head has RANDOM weights; this package proves the "
            "plumbing but predicts nothing useful (meta.json records \"trained\": false)")
    timings = {"create": time.perf_counter() - started}
    return build_package_from_model(model, variant, config, trained=trained,
                                    provenance=provenance, log=log, timings=timings)


def build_package_from_model(model: WindowModel, variant: Variant, config: BuildConfig, *,
                             trained: bool, provenance: dict | None = None, log: Log = stderr_log,
                             timings: dict[str, float] | None = None) -> BuildResult:
    """Export an in-memory WindowModel (e.g. just trained) into a verified package."""
    timings = dict(timings or {})
    model = model.eval().cpu().float()

    def fill(staging: Path) -> ModelMeta:
        files = _export_all(model, staging, config, timings, log)
        parity = ParityReport()
        if config.verify:
            started = time.perf_counter()
            for (kind, precision), name in GRAPH_FILES.items():
                if name in files:
                    log(f"verify  {name}")
                    check_graph(model, kind, staging / name, precision, parity)
            if config.composite:
                check_composite(model, staging, parity)
            timings["verify"] = time.perf_counter() - started
        return _make_meta(model, variant, files, staging, trained, parity, provenance or {})

    target, meta = write_package(config, fill, log, timings)
    return BuildResult(path=target, meta=meta, timings=timings)


def write_package(config: BuildConfig, fill: Callable[[Path], ModelMeta],
                  log: Log = stderr_log, timings: dict[str, float] | None = None
                  ) -> tuple[Path, ModelMeta]:
    """fill(staging) writes the files and returns the meta; the package appears only complete
    (fsrun.model.package.write_package_dir). Adds the int8 step's seconds to timings when config.int8
    asks for one."""
    timings = {} if timings is None else timings
    target = package_dir_for(config)

    def fill_all(staging: Path) -> ModelMeta:
        meta = fill(staging)
        if config.int8 is None:
            return meta
        from fsexport.quantize import quantize_package  # noqa: PLC0415

        (staging / META_NAME).write_text(meta.to_json(), encoding="utf-8")
        started = time.perf_counter()
        quantize_package(staging, config.int8, log)
        timings["int8"] = time.perf_counter() - started
        return load_package(staging).meta

    meta = write_package_dir(target, fill_all, config.force)
    if config.set_default:
        set_default_model(target)
        log(f"default model for fsrun: {target}")
    log(f"wrote {target}")
    return target, meta


def _export_all(model: WindowModel, staging: Path, config: BuildConfig,
                timings: dict[str, float], log: Log) -> list[str]:
    precisions = ["fp32", "fp16"] if config.fp16 else ["fp32"]
    kinds = ["encoder", "head"] + (["model"] if config.composite else [])
    files = []
    for precision in precisions:
        for kind in kinds:
            name = GRAPH_FILES[(kind, precision)]
            log(f"export  {name}")
            started = time.perf_counter()
            export_graph(model, kind, staging / name, precision)
            timings[f"export {name}"] = time.perf_counter() - started
            files.append(name)
    return files


def _make_meta(model: WindowModel, variant: Variant, files: list[str], staging: Path,
               trained: bool, parity: ParityReport, provenance: dict) -> ModelMeta:
    import onnx
    import onnxruntime
    import timm
    import torch

    from fsexport import __version__

    scale = model.encoder.scale.flatten().tolist()
    shift = model.encoder.shift.flatten().tolist()
    std = [1.0 / (255.0 * s) for s in scale]
    mean = [-b * s for b, s in zip(shift, std)]
    return ModelMeta(
        variant=variant.name, backbone=variant.backbone,
        input_size=variant.input_size, window=variant.window, fps=variant.fps,
        embedding_dim=variant.embedding_dim,
        normalization={"mean": [round(m, 6) for m in mean], "std": [round(s, 6) for s in std]},
        trained=trained, files={name: sha256_file(staging / name) for name in sorted(files)},
        parity=parity.as_meta(),
        exporter={"fsexport": __version__, "torch": torch.__version__, "timm": timm.__version__,
                  "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        provenance=provenance,
        axes=list(model.axis_names) if model.axis_names != SINGLE else None,
    )


def file_identity(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {"file": Path(path).name, "sha256": sha256_file(Path(path))}


def _training_config(checkpoint: Path) -> dict | None:
    """The JSON written beside a checkpoint by `fsexport train`, when present, with paths cut
    to their names (a shared package must not carry its maker's folder layout)."""
    config_path = Path(checkpoint).with_suffix(".json")
    if not config_path.is_file():
        return None
    try:
        return portable(json.loads(config_path.read_text(encoding="utf-8")))
    except json.JSONDecodeError:
        return None


def portable(value: Any) -> Any:
    """value with every absolute path (at any depth) replaced by its last part."""
    if isinstance(value, str) and (value.startswith(("/", "~")) or _WINDOWS_PATH.match(value)):
        return Path(value.replace("\\", "/")).name
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    return value


# A Windows absolute path: C:\... or C:/...
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")
