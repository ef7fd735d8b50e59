"""The run plan: which model, backend, precision, resize mode and decoder a run uses, and why.

Every "auto" rule lives here, as tables, and so does the one fallback loop: under
`--backend auto` a backend that looks available but fails to start (driver missing, out of
memory) gives way to the next one in AUTO_ORDER, and the plan says which fallbacks were taken.
`fsrun --explain` prints the plan; every run report carries it.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from fsrun import config as user_config
from fsrun.backends import (BACKEND_CHOICES, BackendOptions, check_backend,
                            create_backend, is_backend_available)
from fsrun.errors import FsError, Interrupted, ModelError, UsageError
from fsrun.model.package import ModelPackage, load_package
from fsrun.run.request import RESIZE_CHOICES, SessionSpec
from fsrun.sources import DECODER_CHOICES, SOURCES, load_source_class, supports

# --backend auto tries these in order. ORT's TensorRT EP caches its engines, so it beats plain
# CUDA after the first run; native engines need `fsexport trt` first, so they are asked for by
# name.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
# --decoder auto tries these in order per video: the first available that supports it wins.
DECODER_AUTO_ORDER: tuple[str, ...] = ("nvdec", "pyav")
# What --precision auto tries per backend, the first the package has wins: fp16 only pays off on
# a GPU; the int8 encoder (ONNX Runtime static quantization, `fsexport quantize`) is built for
# CPU int8 kernels.
AUTO_PRECISIONS: dict[str, tuple[str, ...]] = {
    "cpu": ("int8", "fp32"),
    "cuda": ("fp16", "fp32"),
    "tensorrt": ("fp16", "fp32"),
    "trt-native": ("fp16", "fp32"),
}
# Backend -> resize mode under --resize auto; backends not listed (the GPU ones) use "graph".
AUTO_RESIZE: dict[str, str] = {"cpu": "source"}
# Decoders that can resize in the source; others fall back to (or with --decoder, reject) it.
RESIZING_DECODERS: tuple[str, ...] = ("pyav",)
# Backend -> the decoders it can take frames from without a copy back per frame: NVDEC frames
# live in GPU memory, which the CPU backend cannot read. Backends not listed take any decoder.
BACKEND_DECODERS: dict[str, tuple[str, ...]] = {"cpu": ("pyav",)}
T = TypeVar("T")
# How to add a precision a package lacks, for the error that says so.
MISSING_PRECISION_HINT: dict[str, str] = {
    "int8": " (add one with `fsexport quantize PKG`)",
    "fp16": " (rebuild it without --no-fp16)",
}
# Why a decoder is ruled out, by rule name (for the one-line error under an explicit --decoder).
DECODER_RULES: dict[str, str] = {
    "backend": "--decoder {decoder} needs a GPU backend (--backend cuda or tensorrt)",
    "resize": "--resize source needs the pyav decoder (not {decoder})",
}


@dataclass(frozen=True)
class Requested:
    """What the user asked for, "auto" included (the plan keeps it to re-plan on fallback)."""

    backend: str = "auto"  # auto or a BACKENDS name
    decoder: str = "auto"  # auto or a SOURCES name
    precision: str = "auto"  # auto, fp32, fp16 or int8
    resize: str = "auto"  # auto, source or graph


@dataclass(frozen=True)
class RunPlan:
    model: Path  # the model package directory, resolved
    model_name: str  # its directory name
    model_hash: str  # identity of its weights (ModelPackage.model_hash)
    backend: str  # the backend that runs encoder and head
    precision: str  # fp32, fp16 or int8 encoder (int8 feeds the fp32 head)
    resize: str  # source or graph
    decoder: str  # pyav or nvdec, or auto: chosen per video (NVDEC when it supports the file)
    requested: Requested  # what was asked for
    candidates: tuple[str, ...] = ()  # backends to fall back to if this one fails to start
    device_id: int = 0  # CUDA device for GPU decoders and backends
    threads: int = 0  # CPU inference threads; 0 lets ONNX Runtime decide
    notices: tuple[str, ...] = ()  # one-line notices for the user (the demo model in use)
    fallbacks: tuple[str, ...] = ()  # "backend: why it failed" for each fallback taken
    cache_root: Path | None = None  # --cache-dir; None = the user cache folder

    def backend_options(self, package: ModelPackage) -> BackendOptions:
        engines = user_config.cache_root(self.cache_root) / "engines" / self.model_hash[:16]
        return BackendOptions.for_package(package, device_id=self.device_id,
                                          precision=self.precision, threads=self.threads,
                                          cache_dir=engines)

    def decoder_for(self, video: Path | str) -> tuple[str, list[str]]:
        """The decoder for one video, with notes on any fallback (NVDEC not supporting it)."""
        if self.decoder != "auto":
            return self.decoder, []
        return choose_decoder(video, "auto", self.device_id)

    def summary(self) -> str:
        """One line: model | backend (precision) | decoder | resize."""
        return (f"model: {self.model_name} | backend: {self.backend} ({self.precision}) | "
                f"decoder: {self.decoder} | resize: {self.resize}")

    def explain(self) -> str:
        """The plan for people (`fsrun --explain`): each choice, what was asked, and why."""
        asked = self.requested
        decoder = ("per video: nvdec where it supports the file, else pyav"
                   if self.decoder == "auto" else self.decoder)
        lines = [f"model:     {self.model_name} ({self.model}, sha256 {self.model_hash[:12]})",
                 f"backend:   {self.backend} (asked: {asked.backend})",
                 f"precision: {self.precision} (asked: {asked.precision})",
                 f"resize:    {self.resize} (asked: {asked.resize})",
                 f"decoder:   {decoder} (asked: {asked.decoder})"]
        if self.candidates:
            lines.append(f"fallback:  {', '.join(self.candidates)}, if {self.backend} "
                         "fails to start")
        lines += [f"fell back: {failure}" for failure in self.fallbacks]
        lines += [f"note:      {notice}" for notice in self.notices]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, for the run report and --explain."""
        data = dataclasses.asdict(self)
        data["model"] = str(self.model)
        data["candidates"], data["notices"] = list(self.candidates), list(self.notices)
        data["fallbacks"] = list(self.fallbacks)
        data["cache_root"] = str(self.cache_root) if self.cache_root is not None else None
        return data


def resolve_model(model: Path | str | None, fps: float | None = None,
                  log: Callable[[str], None] | None = None,
                  cache_root: Path | None = None) -> tuple[Path, str | None]:
    """--model, then $FSRUN_MODEL, then the default from `fsexport build`, then the demo. A
    `.onnx` file is a creator's one-graph model: the package cut from it (fsrun.onnx_door,
    kept in the user cache) is used, and the notice says so the first time. fps is `--fps`,
    the frame rate of such a file (a package records its own); log hears at once when another
    process is cutting the same file and this one waits."""
    if model is not None:
        from fsrun.onnx_door import cached_package, is_onnx_file  # noqa: PLC0415

        if is_onnx_file(model):
            return cached_package(Path(model), fps, log, cache_root)
        if fps is not None:
            raise UsageError("--fps is for a .onnx --model; a package records its own frame "
                             "rate (fsexport build --fps)")
        if not Path(model).exists():
            raise ModelError(f"{model}: no such model (a NAME.fsmodel package folder or a "
                             ".onnx file)")
        return Path(model), None
    if fps is not None:
        raise UsageError("--fps is for a .onnx --model; a package records its own frame rate")
    if os.environ.get(user_config.MODEL_ENV):
        return Path(os.environ[user_config.MODEL_ENV]), None
    default = user_config.get_default_model()
    if default is not None:
        return default, None
    demo = user_config.demo_model_dir()
    if demo.is_dir():
        return demo, (f"using the bundled demo model ({demo.name}: a tiny model for trying fsrun "
                      "out, not for real scripts); build one with `fsexport build` or pass --model")
    raise ModelError("no model: pass --model PKG, set $FSRUN_MODEL, or run `fsexport build`")


def choose_precision(package: ModelPackage, backend: str, requested: str) -> str:
    """Under "auto", the first of AUTO_PRECISIONS[backend] the package has, else fp32; an
    explicit precision the package lacks is an error that says how to add it."""
    for wanted in AUTO_PRECISIONS[backend] if requested == "auto" else (requested,):
        if package.has_graph("encoder", wanted) and package.has_graph("head", wanted):
            return wanted
    if requested == "auto":
        return "fp32"
    raise ModelError(f"{package.path}: has no {requested} encoder/head graphs"
                     + MISSING_PRECISION_HINT.get(requested, ""))


def resolve_resize(requested: str, backend: str) -> str:
    """The resize mode for a run on this (resolved) backend: source or graph."""
    _check_choice("--resize", requested, RESIZE_CHOICES)
    return AUTO_RESIZE.get(backend, "graph") if requested == "auto" else requested


def allowed_decoders(backend: str, resize: str) -> dict[str, str | None]:
    """Decoder -> None when usable with this backend and resize mode, else the rule against it."""
    allowed: dict[str, str | None] = {}
    for decoder in SOURCES:
        if decoder not in BACKEND_DECODERS.get(backend, tuple(SOURCES)):
            allowed[decoder] = "backend"
        elif resize == "source" and decoder not in RESIZING_DECODERS:
            allowed[decoder] = "resize"
        else:
            allowed[decoder] = None
    return allowed


def resolve_decoder(requested: str, backend: str, resize: str) -> str:
    """The decoder name, or "auto" when more than one decoder fits and each video decides."""
    _check_choice("--decoder", requested, DECODER_CHOICES)
    rules = allowed_decoders(backend, resize)
    if requested != "auto":
        rule = rules[requested]
        if rule is not None:
            raise UsageError(DECODER_RULES[rule].format(decoder=requested))
        return requested
    usable = [name for name, rule in rules.items() if rule is None]
    return usable[0] if len(usable) == 1 else "auto"


def backend_candidates(requested: str) -> tuple[str, ...]:
    """The backends to try in order: the one asked for, or every available one in AUTO_ORDER."""
    _check_choice("--backend", requested, BACKEND_CHOICES)
    if requested != "auto":
        return (check_backend(requested),)  # a missing library fails here, by name
    return tuple(b for b in AUTO_ORDER if is_backend_available(b)) or (AUTO_ORDER[-1],)


def make_plan(cfg: SessionSpec, package: ModelPackage | None = None,
              resolved: tuple[Path, str | None] | None = None) -> RunPlan:
    """The plan for a run: every "auto" in cfg resolved. Reads the package's meta.json (not its
    hashes; the session verifies those) unless the loaded package is passed; `resolved` is
    resolve_model's answer when the caller has it already (its notice is kept)."""
    # SessionSpec checked each of these against its choices when it was made.
    requested = Requested(cfg.backend, cfg.decoder, cfg.precision, cfg.resize)
    if cfg.resize == "source" and cfg.decoder not in ("auto", *RESIZING_DECODERS):
        raise UsageError(DECODER_RULES["resize"].format(decoder=cfg.decoder))
    model, notice = resolved or resolve_model(cfg.model, cfg.model_fps, None, cfg.cache_dir)
    if package is None:
        package = load_package(model, verify=False)
    candidates = backend_candidates(cfg.backend)
    base = RunPlan(model=Path(package.path), model_name=package.name,
                   model_hash=package.model_hash, backend=candidates[0], precision="fp32",
                   resize="graph", decoder="auto", requested=requested,
                   candidates=candidates[1:], device_id=cfg.device_id, threads=cfg.threads,
                   notices=(notice,) if notice else (), cache_root=cfg.cache_dir)
    return _on_backend(base, package, candidates[0])


def _on_backend(plan: RunPlan, package: ModelPackage, backend: str) -> RunPlan:
    """The plan re-derived for one backend: precision, resize and decoder follow from it."""
    requested = plan.requested
    resize = resolve_resize(requested.resize, backend)
    return dataclasses.replace(
        plan, backend=backend, precision=choose_precision(package, backend, requested.precision),
        resize=resize, decoder=resolve_decoder(requested.decoder, backend, resize))


def start_graph(plan: RunPlan, package: ModelPackage, graph: str,
                factory: Callable[..., Any] | None = None) -> Any:
    """Start one graph (encoder or head) on the plan's backend, no fallback."""
    make = factory or create_backend
    return make(plan.backend, package.graph(graph, plan.precision), plan.backend_options(package))


def start_backends(plan: RunPlan, package: ModelPackage, graphs: Sequence[str],
                   factory: Callable[..., Any] | None = None) -> tuple[dict[str, Any], RunPlan]:
    """Start `graphs` on the plan's backend; under --backend auto a backend that fails to start
    gives way to the next candidate. Returns the started backends and the plan that held."""
    order = (plan.backend, *plan.candidates)

    def start(backend: str) -> tuple[dict[str, Any], RunPlan]:
        attempt = plan if backend == plan.backend else _on_backend(plan, package, backend)
        started: dict[str, Any] = {}
        try:
            for graph in graphs:
                started[graph] = start_graph(attempt, package, graph, factory)
        except BaseException:
            for running in started.values():
                running.close()
            raise
        return started, attempt

    (started, held), backend, failures = first_that_starts(
        order, start, fall_back=plan.requested.backend == "auto")
    return started, dataclasses.replace(held, candidates=order[order.index(backend) + 1:],
                                        fallbacks=(*plan.fallbacks, *failures))


def first_that_starts(candidates: Sequence[str], start: Callable[[str], T],
                      fall_back: bool = True) -> tuple[T, str, tuple[str, ...]]:
    """The fallback loop: start(candidate) for each in turn until one starts without an fsrun
    error. Returns (what started, its name, "name: why" for each that failed). Without
    fall_back the first error is raised as it is."""
    failures: list[str] = []
    for candidate in candidates:
        try:
            return start(candidate), candidate, tuple(failures)
        except Interrupted:
            raise
        except FsError as exc:
            if not fall_back:
                raise
            failures.append(f"{candidate}: {exc}")
    raise ModelError("no backend could start: " + "; ".join(failures))


def _check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f"unknown {option} {value!r}; choose from {', '.join(choices)}")


def choose_decoder(path: Path | str, decoder: str = "auto",
                   device_id: int = 0) -> tuple[str, list[str]]:
    """The decoder for one video and the notes explaining any fallback: the named one, or
    under "auto" the first of DECODER_AUTO_ORDER that is available and supports the file."""
    path = Path(path)
    if decoder != "auto":
        load_source_class(decoder)
        return decoder, []
    notes: list[str] = []
    for name in DECODER_AUTO_ORDER:
        ok, reason = supports(name, path, device_id)
        if ok:
            return name, notes
        if reason:
            notes.append(reason)
    return "pyav", notes
