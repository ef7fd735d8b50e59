"""Build TensorRT engines for a package with the TensorRT Python API (TensorRT 10 and 11).

One engine per graph and precision, named by GPU model, TensorRT major.minor and precision
(fsrun.backends.trt_naming), written into PACKAGE/engines/ next to a timing cache that makes
rebuilds fast. Precision handling differs between the two APIs:

- TensorRT 11 has only strongly typed networks: no builder precision flags exist, so the fp16
  engine is built from the package's fp16 ONNX, whose types say where half precision is used.
- TensorRT 10 builds the same strongly typed network from the fp16 ONNX when the package has
  one; for a package without fp16 graphs it falls back to the fp32 graph with the FP16 builder
  flag (weak typing, which TensorRT 11 removed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fsrun.files.atomic import write_atomic
from fsrun.backends.trt_naming import (
    engine_filename,
    engines_dir,
    timing_cache_filename,
    trt_major,
)
from fsrun.backends.trt_profiles import InputProfile, ProfileLimits, input_profile
from fsrun.errors import MissingDependencyError, ModelError, UsageError
from fsrun.model.package import ModelPackage, load_package

TENSORRT_EXTRA = "fsexport[tensorrt]"
DEFAULT_GRAPHS = ("encoder", "head")  # what fsrun runs; the composite is built on request


@dataclass(frozen=True)
class PrecisionPlan:
    graph_precision: str  # which ONNX of the package to parse: fp32 or fp16
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag members to set
    builder_flags: tuple[str, ...]  # BuilderFlag members to set


def _plan_trt10(precision: str, has_fp16_graph: bool) -> PrecisionPlan:
    if precision == "fp16" and not has_fp16_graph:
        return PrecisionPlan("fp32", (), ("FP16",))
    return PrecisionPlan(precision, ("STRONGLY_TYPED",), ())


def _plan_trt11(precision: str, has_fp16_graph: bool) -> PrecisionPlan:
    if precision == "fp16" and not has_fp16_graph:
        raise ModelError("TensorRT 11 takes precision from the ONNX graph and this package has "
                         "no fp16 graphs; rebuild it with fp16 (fsexport build --fp16)")
    return PrecisionPlan(precision, (), ())  # strongly typed always; the flag is deprecated


# First TensorRT major of each API generation -> how precision is chosen there.
PRECISION_PLANS: dict[int, Callable[[str, bool], PrecisionPlan]] = {
    10: _plan_trt10,
    11: _plan_trt11,
}


def precision_plan(trt_version: str, precision: str, has_fp16_graph: bool) -> PrecisionPlan:
    """How to build an engine of this precision with this TensorRT version."""
    if precision not in ("fp32", "fp16"):
        raise UsageError(f"precision must be fp32 or fp16, got {precision!r}")
    major = trt_major(trt_version)
    generations = [g for g in PRECISION_PLANS if g <= major]
    if not generations:
        raise MissingDependencyError(f"tensorrt>=10 (found {trt_version})", TENSORRT_EXTRA)
    return PRECISION_PLANS[max(generations)](precision, has_fp16_graph)


def import_tensorrt() -> Any:
    try:
        import tensorrt  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("tensorrt", TENSORRT_EXTRA) from None
    return tensorrt


def gpu_name(device_id: int = 0) -> str:
    """The device name exactly as the runtime reads it (cudaGetDeviceProperties().name)."""
    from fsrun.gpu import get_runtime  # noqa: PLC0415

    try:
        return get_runtime(device_id).device_name()
    except MissingDependencyError:
        import torch  # noqa: PLC0415  (fsexport has torch; same property underneath)

        if not torch.cuda.is_available():
            raise UsageError("building TensorRT engines needs a CUDA GPU") from None
        return torch.cuda.get_device_name(device_id)


def _flags(enum: Any, names: tuple[str, ...]) -> int:
    value = 0
    for name in names:
        value |= 1 << int(getattr(enum, name))
    return value


class _EngineBuilder:
    """One TensorRT builder and timing cache shared by every engine of a package."""

    def __init__(self, trt: Any, package: ModelPackage, device_name: str, limits: ProfileLimits,
                 workspace_bytes: int):
        self.trt = trt
        self.package = package
        self.device_name = device_name
        self.limits = limits
        self.workspace_bytes = workspace_bytes
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.builder = trt.Builder(self.logger)
        self.cache_path = engines_dir(package.path) / timing_cache_filename(device_name,
                                                                            trt.__version__)

    def build(self, graph: str, plan: PrecisionPlan, target: Path) -> None:
        trt = self.trt
        onnx_path = self.package.graph(graph, plan.graph_precision)
        network = self.builder.create_network(
            _flags(trt.NetworkDefinitionCreationFlag, plan.network_flags))
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"{onnx_path.name}: TensorRT could not parse it: {errors}")
        config = self.builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        for flag in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        profile = self._profile(graph)
        optimization = self.builder.create_optimization_profile()
        optimization.set_shape(profile.name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(optimization)
        cached = self.cache_path.read_bytes() if self.cache_path.is_file() else b""
        timing_cache = config.create_timing_cache(cached)
        config.set_timing_cache(timing_cache, False)
        serialized = self.builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(f"{onnx_path.name}: TensorRT failed to build an engine (see the "
                             f"TensorRT messages above)")
        write_atomic(target, bytes(serialized))
        write_atomic(self.cache_path, bytes(timing_cache.serialize()))

    def _profile(self, graph: str) -> InputProfile:
        meta = self.package.meta
        return input_profile(graph, meta.window, meta.embedding_dim, self.limits)


def build_engines(package_dir: Path | str, precisions: tuple[str, ...] = ("fp16",),
                  graphs: tuple[str, ...] = DEFAULT_GRAPHS, max_batch: int = 32,
                  max_frame: tuple[int, int] = (1080, 1920),
                  opt_frame: tuple[int, int] | None = None, workspace_gb: float = 4.0,
                  device_id: int = 0, force: bool = False,
                  progress: Callable[[str], None] | None = None) -> list[Path]:
    """Build (or keep, unless force) one engine per graph and precision; returns their paths."""
    trt = import_tensorrt()
    package = load_package(package_dir)
    limits = ProfileLimits(max_batch=max_batch, opt_batch=max(1, max_batch // 2),
                           max_frame=tuple(max_frame), opt_frame=tuple(opt_frame or max_frame))
    device_name = gpu_name(device_id)
    engines_dir(package.path).mkdir(exist_ok=True)
    builder = _EngineBuilder(trt, package, device_name, limits, int(workspace_gb * (1 << 30)))
    written: list[Path] = []
    for precision in precisions:
        for graph in graphs:
            plan = precision_plan(trt.__version__, precision,
                                  package.has_graph(graph, "fp16"))
            target = engines_dir(package.path) / engine_filename(graph, device_name,
                                                                 trt.__version__, precision)
            if target.is_file() and not force:
                if progress:
                    progress(f"{target.name}: already built (use --force to rebuild)")
            else:
                if progress:
                    progress(f"{target.name}: building from "
                             f"{package.graph(graph, plan.graph_precision).name}")
                builder.build(graph, plan, target)
            written.append(target)
    return written
