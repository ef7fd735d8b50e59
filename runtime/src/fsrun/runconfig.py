"""What one run is asked to do (RunConfig) and what it produced (RunResult)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fsrun.backends import BACKEND_CHOICES, PRECISION_CHOICES, BackendOptions
from fsrun.crop import parse_crop
from fsrun.errors import UsageError
from fsrun.outputs import Protected
from fsrun.postprocess import PostprocessOptions
from fsrun.sampling import TimeRange
from fsrun.sources import DECODER_CHOICES

# Where frames are resized to the model's input size. source: swscale in the PyAV decoder (on
# the CPU that costs far less than a full-size RGB frame resized inside the graph); graph: the
# encoder's own Resize (on a GPU, frames already in device memory are resized there); auto:
# the run plan's rule (fsrun/plan.py).
RESIZE_CHOICES: tuple[str, ...] = ("auto", "source", "graph")
# The options with a fixed set of values, and those values: checked when a RunConfig is made.
CHOICES: dict[str, tuple[str, ...]] = {"backend": BACKEND_CHOICES, "decoder": DECODER_CHOICES,
                                       "precision": PRECISION_CHOICES, "resize": RESIZE_CHOICES}

# Frames between window starts. The encoder runs once per frame whatever the stride; a smaller
# stride only runs the (cheap) head on more windows, and each position becomes a blend of
# 60/stride predictions. Against synthetic ground truth (stride_accuracy.md in the benchmark
# results), a briefly trained model gains per-frame r 0.924 -> 0.947 from 30 to 15 and only
# 0.005 more at 10; a well trained one is unchanged (0.999). Head time at 15: 0.03 ms a frame.
DEFAULT_STRIDE = 15

BackendFactory = Callable[[str, Path, BackendOptions], Any]


@dataclass(frozen=True)
class RunWatch:
    """Someone watching a run from another thread (the studio): told the frames done after each
    encoder batch, and asked then whether to stop (the run raises Interrupted, nothing written,
    the cache kept for the next run); told the windows done after each head batch."""

    progress: Callable[[int, int | None], None] | None = None  # (frames done, frames expected)
    head_progress: Callable[[int, int], None] | None = None  # (windows done, windows)
    cancelled: Callable[[], bool] | None = None  # True: stop at the next safe point


@dataclass(frozen=True)
class RunConfig:
    video: Path  # input video file
    model: Path | None = None  # model package or seed-contract .onnx file; None resolves
    # $FSRUN_MODEL, the default, the demo
    model_fps: float | None = None  # --fps: frame rate of a .onnx model (packages record theirs)
    output: Path | None = None  # funscript path; None writes VIDEO.funscript
    backend: str = "auto"  # auto, cpu, cuda, tensorrt, trt-native
    decoder: str = "auto"  # auto, pyav, nvdec
    stride: int = DEFAULT_STRIDE  # frames between window starts (1..window)
    batch: int = 16  # frames per encoder call
    head_batch: int = 32  # windows per head call
    crop: str = "full"  # full, sbs-left, sbs-right or X,Y,W,H
    resize: str = "auto"  # auto, source (swscale in the decoder) or graph (in the encoder)
    start: float = 0.0  # seconds: first time to process
    end: float | None = None  # seconds: stop before this time; None = end of video
    force: bool = False  # overwrite an existing funscript
    quiet: bool = False  # no notices, no progress bar
    progress: bool | None = None  # progress bar; None = only when stderr is a terminal
    report: Path | None = None  # write the run report as JSON here
    postprocess: PostprocessOptions = field(default_factory=PostprocessOptions)  # points kept
    use_cache: bool = True  # read and write the embedding cache
    cache_dir: Path | None = None  # cache root; None = user cache dir ($FSRUN_CACHE_DIR)
    precision: str = "auto"  # fp32, fp16, int8, or auto (AUTO_PRECISIONS: int8 on the CPU,
    # fp16 on GPU backends, when packaged)
    threads: int = 0  # CPU inference threads; 0 lets ONNX Runtime decide
    device_id: int = 0  # CUDA device for GPU decoders and backends
    queue_size: int = 4  # decoded batches waiting for the encoder (bounds memory)
    backend_factory: BackendFactory | None = None  # builds backends; None = create_backend
    log: Callable[[str], None] | None = None  # where one-line notices go; None = silent
    protected: Protected | None = None  # more files no output may replace: a folder's videos
    watch: RunWatch | None = None  # progress and cancel from another thread (the studio)

    def __post_init__(self) -> None:
        """One-line UsageError for a value no run could use, whoever made the config (the
        command line, the studio, a script): before any work."""
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise UsageError(f"unknown --{name} {getattr(self, name)!r}; choose from "
                                 f"{', '.join(choices)}")
        for name, least in (("stride", 1), ("batch", 1), ("head_batch", 1), ("queue_size", 1),
                            ("threads", 0), ("device_id", 0)):
            if getattr(self, name) < least:
                raise UsageError(f"--{name.replace('_', '-')} must be at least {least}, got "
                                 f"{getattr(self, name)}")
        TimeRange(self.start, self.end)  # its rules: --start >= 0, --end after --start
        if self.model_fps is not None and not self.model_fps > 0:
            raise UsageError(f"--fps must be positive, got {self.model_fps}")
        parse_crop(self.crop)  # a crop that parses nowhere is refused here


# RunConfig fields a model session fixes when it opens; every video it processes must agree.
SESSION_FIELDS: tuple[str, ...] = ("model", "model_fps", "backend", "decoder", "precision", "resize",
                                   "threads", "device_id", "backend_factory")


@dataclass
class RunResult:
    output: Path  # the funscript written
    actions: int  # points in it
    report: dict[str, Any]  # timings (s) and counts; also written by --report
    pts_ms: np.ndarray  # float64 [n]: timestamps of the sampled frames
    positions: np.ndarray  # float32 [n]: stitched raw positions in 0..1
    padded: bool  # the clip was shorter than one window
