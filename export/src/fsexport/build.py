"""`fsexport build`: model -> verified package directory (ONNX graphs + meta.json)."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fsexport.model import BackboneSource, WindowModel, calibrate_batchnorm, create_model
from fsexport.onnx_export import export_graph
from fsexport.parity import ParityReport, check_composite, check_graph
from fsexport.variants import Variant, get_variant
from fsexport.weights import load_backbone_weights, load_checkpoint
from fsrun.config import set_default_model
from fsrun.errors import OutputError, UsageError
from fsrun.package import (FORMAT_VERSION, GRAPH_FILES, META_NAME, ModelMeta, load_package,
                           sha256_file)

if TYPE_CHECKING:
    from fsexport.quantize import QuantizeConfig

Log = Callable[[str], None]


@dataclass
class BuildConfig:
    variant: str = "tiny"  # row of the variant table
    output: Path | None = None  # folder the package directory is written into (default: cwd)
    name: str | None = None  # package directory name (default: VARIANT.fsmodel)
    force: bool = False  # replace an existing package directory
    checkpoint: Path | None = None  # trained WindowModel weights (safetensors or state dict)
    pretrained: bool = False  # timm hub weights for the backbone (needs network access)
    backbone_weights: Path | None = None  # local timm backbone weights file
    input_size: int | None = None  # override the variant's input size
    window: int | None = None  # override the window length T
    fps: float | None = None  # override the model's frame rate
    fp16: bool = True  # also write *.fp16.onnx for GPU backends
    composite: bool = True  # also write model.onnx (the one-graph contract)
    set_default: bool = True  # make this package fsrun's default model
    seed: int = 0  # seed for untrained weights, so builds are reproducible
    verify: bool = True  # run the ONNX Runtime vs PyTorch parity checks
    int8: QuantizeConfig | None = None  # also write encoder.int8.onnx (None: no int8 encoder)


@dataclass
class BuildResult:
    path: Path  # the written package directory
    meta: ModelMeta  # what meta.json holds
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def package_dir_for(config: BuildConfig) -> Path:
    name = config.name or f"{config.variant}.fsmodel"
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise UsageError(f"invalid package name {name!r}")
    return Path(config.output or Path.cwd()) / name


def build_package(config: BuildConfig, log: Log = _stderr) -> BuildResult:
    """Create the model from the variant table and weights, then export and verify it."""
    variant = get_variant(config.variant).with_overrides(config.input_size, config.window, config.fps)
    target = package_dir_for(config)
    refuse_existing(target, config.force)
    started = time.perf_counter()
    source = BackboneSource(pretrained=config.pretrained, weights_file=None)
    model = create_model(variant, source, seed=config.seed)
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
        provenance["training"] = _training_config(config.checkpoint)
    trained = config.checkpoint is not None
    if not trained:
        log("WARNING: no --checkpoint given: the head has RANDOM weights; this package proves the "
            "plumbing but predicts nothing useful (meta.json records \"trained\": false)")
    timings = {"create": time.perf_counter() - started}
    return build_package_from_model(model, variant, config, trained=trained,
                                    provenance=provenance, log=log, timings=timings)


def build_package_from_model(model: WindowModel, variant: Variant, config: BuildConfig, *,
                             trained: bool, provenance: dict | None = None, log: Log = _stderr,
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

    target, meta = write_package(config, fill, log)
    return BuildResult(path=target, meta=meta, timings=timings)


def write_package(config: BuildConfig, fill: Callable[[Path], ModelMeta],
                  log: Log = _stderr) -> tuple[Path, ModelMeta]:
    """fill(staging) writes the files and returns the meta; the package appears only complete."""
    target = package_dir_for(config)
    refuse_existing(target, config.force)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        meta = fill(staging)
        (staging / META_NAME).write_text(meta.to_json(), encoding="utf-8")
        if config.int8 is not None:
            from fsexport.quantize import quantize_package  # noqa: PLC0415

            started = time.perf_counter()
            quantize_package(staging, config.int8, log)
            meta = load_package(staging).meta
            timings["int8"] = time.perf_counter() - started
        _replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
        format_version=FORMAT_VERSION, variant=variant.name, backbone=variant.backbone,
        input_size=variant.input_size, window=variant.window, fps=variant.fps,
        embedding_dim=variant.embedding_dim,
        normalization={"mean": [round(m, 6) for m in mean], "std": [round(s, 6) for s in std]},
        trained=trained, files={name: sha256_file(staging / name) for name in sorted(files)},
        parity=parity.as_meta(),
        exporter={"fsexport": __version__, "torch": torch.__version__, "timm": timm.__version__,
                  "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        provenance=provenance,
    )


def refuse_existing(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise OutputError(f"{target} exists; use --force to replace it")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a directory")


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap the finished package in; the old one is removed only after the swap."""
    staging.chmod(0o755)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_identity(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {"file": Path(path).name, "sha256": sha256_file(Path(path))}


def _training_config(checkpoint: Path) -> dict | None:
    """The JSON written beside a checkpoint by `fsexport train`, when present."""
    config_path = Path(checkpoint).with_suffix(".json")
    if not config_path.is_file():
        return None
    try:
        return json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
