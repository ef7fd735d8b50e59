"""What a run is asked to do, in three small frozen parts, and what it produced.

- SessionSpec: what a model session fixes when it opens (the model, the backend and decoder,
  precision, resize, threads, the cache root). A session opens from a spec alone, no video.
- VideoRequest: one video's run (the video, its outputs, stride, crop, range,
  post-processing, force, the files no output may replace).
- RunHooks: who hears a run and who may stop it (notices, progress, cancel) and the test seam
  that builds backends.

Each validates itself when made, so the command line, the studio, Ray and a script all get the
same one-line UsageError for a value no run could use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fsrun.backends import BACKEND_CHOICES, PRECISION_CHOICES, BackendOptions
from fsrun.axes import parse_axes
from fsrun.crop import parse_crop
from fsrun.defaults import DEFAULT_STRIDE
from fsrun.errors import UsageError
from fsrun.numbers import is_finite
from fsrun.files.outputs import Protected
from fsrun.run.postprocess import PostprocessOptions
from fsrun.run.sampling import TimeRange
from fsrun.sources import DECODER_CHOICES

# Where frames are resized to the model's input size. source: swscale in the PyAV decoder (on
# the CPU that costs far less than a full-size RGB frame resized inside the graph); graph: the
# encoder's own Resize (on a GPU, frames already in device memory are resized there); auto:
# the run plan's rule (fsrun/run/plan.py).
RESIZE_CHOICES: tuple[str, ...] = ("auto", "source", "graph")
# The options with a fixed set of values, and those values: checked when a SessionSpec is made.
CHOICES: dict[str, tuple[str, ...]] = {"backend": BACKEND_CHOICES, "decoder": DECODER_CHOICES,
                                       "precision": PRECISION_CHOICES, "resize": RESIZE_CHOICES}

BackendFactory = Callable[[str, Path, BackendOptions], Any]


@dataclass(frozen=True)
class SessionSpec:
    model: Path | None = None  # model package or seed-contract .onnx file; None resolves
    # $FSRUN_MODEL, the default, the demo
    model_fps: float | None = None  # --fps: frame rate of a .onnx model (packages record theirs)
    backend: str = "auto"  # auto, cpu, cuda, tensorrt, trt-native
    decoder: str = "auto"  # auto, pyav, nvdec
    precision: str = "auto"  # fp32, fp16, int8, or auto (the plan's AUTO_PRECISIONS)
    resize: str = "auto"  # auto, source (swscale in the decoder) or graph (in the encoder)
    threads: int = 0  # CPU inference threads; 0 lets ONNX Runtime decide
    device_id: int = 0  # CUDA device for GPU decoders and backends
    batch: int = 16  # frames per encoder call
    head_batch: int = 32  # windows per head call
    queue_size: int = 4  # decoded batches waiting for the encoder (bounds memory)
    use_cache: bool = True  # read and write the embedding cache
    cache_dir: Path | None = None  # the cache root; None = $FSRUN_CACHE_DIR or the user cache

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise UsageError(f"unknown --{name} {getattr(self, name)!r}; choose from "
                                 f"{', '.join(choices)}")
        for name, least in (("batch", 1), ("head_batch", 1), ("queue_size", 1),
                            ("threads", 0), ("device_id", 0)):
            if getattr(self, name) < least:
                raise UsageError(f"--{name.replace('_', '-')} must be at least {least}, got "
                                 f"{getattr(self, name)}")
        if self.model_fps is not None and not (is_finite(self.model_fps)
                                               and self.model_fps > 0):
            raise UsageError(f"--fps must be a positive number, got {self.model_fps}")


@dataclass(frozen=True)
class VideoRequest:
    video: Path  # input video file (a folder for a folder run, before it names each video)
    output: Path | None = None  # funscript path; None writes VIDEO.funscript
    stride: int = DEFAULT_STRIDE  # frames between window starts (1..window)
    crop: str = "full"  # full, sbs-left, sbs-right or X,Y,W,H on the upright picture
    start: float = 0.0  # seconds on the presented clock: first time to process
    end: float | None = None  # seconds: stop before this time; None = end of video
    postprocess: PostprocessOptions = field(default_factory=PostprocessOptions)  # points kept
    force: bool = False  # replace an existing funscript
    report: Path | None = None  # write the run report as JSON here
    protected: Protected | None = None  # more files no output may replace: a folder's videos
    axes: tuple[str, ...] | None = None  # axes to write (fsrun/axes.py); None: all the model's
    multi_axis_file: bool = False  # one file in the funscript 1.1 form instead of one per axis

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise UsageError(f"--stride must be at least 1, got {self.stride}")
        TimeRange(self.start, self.end)  # its rules: finite, --start >= 0, --end after --start
        parse_crop(self.crop)  # a crop that parses nowhere is refused here
        if self.axes is not None:
            parse_axes(self.axes)  # unknown or repeated names


@dataclass(frozen=True)
class RunWatch:
    """Someone watching a run from another thread (the studio): told the frames done after each
    encoder batch, and asked then whether to stop (the run raises Interrupted, nothing written,
    the cache kept for the next run); told the windows done after each head batch."""

    progress: Callable[[int, int | None], None] | None = None  # (frames done, frames expected)
    head_progress: Callable[[int, int], None] | None = None  # (windows done, windows)
    cancelled: Callable[[], bool] | None = None  # True: stop at the next safe point


@dataclass(frozen=True)
class RunHooks:
    log: Callable[[str], None] | None = None  # where one-line notices go; None = silent
    quiet: bool = False  # no notices, no progress bar
    progress: bool | None = None  # progress bar; None = only when stderr is a terminal
    watch: RunWatch | None = None  # progress and cancel from another thread (the studio)
    backend_factory: BackendFactory | None = None  # builds backends (tests slow or break
    # them); None = backends.create_backend

    def say(self) -> Callable[[str], None]:
        """Where one-line notices go: the log, or nowhere when quiet."""
        return (lambda message: None) if self.quiet or self.log is None else self.log


@dataclass
class RunResult:
    output: Path  # the funscript written
    actions: int  # points in it
    report: dict[str, Any]  # timings (s) and counts; also written by --report
    pts_ms: np.ndarray  # float64 [n]: timestamps of the sampled frames
    positions: np.ndarray  # float32 [n]: stitched raw positions in 0..1 (the stroke)
    padded: bool  # the clip was shorter than one window
    axis_positions: dict[str, np.ndarray] = field(default_factory=dict)  # every axis of a
    # model of several: axis -> float32 [n] raw positions (the stroke's is `positions`)
    outputs: dict[str, Path] = field(default_factory=dict)  # axis -> the file written for it
    axis_actions: dict[str, int] = field(default_factory=dict)  # axis -> points in its file
