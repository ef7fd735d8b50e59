"""A benchmark-only video source: fsrun's PyAV source with swscale resizing each kept frame to
the model's input size, so the encoder's in-graph resize has nothing left to do.

It measures, in real fsrun runs, what moving the resize out of the graph and into the decoder
buys on the CPU. It wraps the decoded frames rather than copying PyAvSource, so everything else
(sampling, timestamps, rotation, batching, errors) is fsrun's own code. Full frames only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from fsrun.errors import UsageError
from fsrun.sources.base import Crop
from fsrun.sources.pyav_source import PyAvSource

DECODER_NAME = "pyav-resize"
TABLE_ENTRY = "benchmarks.resize_source:PyAvResizeSource"


class _ResizedFrame:
    """A decoded frame whose RGB conversion also scales it (one swscale pass, from YUV)."""

    def __init__(self, frame: Any, size: int):
        self._frame = frame
        self._size = size

    def to_ndarray(self, format: str = "rgb24") -> Any:  # noqa: A002 - PyAV's own keyword
        PyAvResizeSource.resized_frames += 1
        return self._frame.reformat(width=self._size, height=self._size,
                                    format=format).to_ndarray()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._frame, name)


class PyAvResizeSource(PyAvSource):
    name = DECODER_NAME
    size = 0  # model input size; set by register() before the run
    resized_frames = 0  # frames converted through the resize; proves the hook was reached

    def __init__(self, path: Path | str, crop: Crop | None = None, device_id: int = 0):
        if crop is not None:
            raise UsageError(f"{DECODER_NAME} handles full frames only")
        if self.size < 1:
            raise UsageError(f"{DECODER_NAME}: register(size) first")
        super().__init__(path, crop=None, device_id=device_id)

    def _decode_skipping_damage(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for frame in super()._decode_skipping_damage(*args, **kwargs):
            yield _ResizedFrame(frame, self.size)


def check_reached() -> None:
    """Raise when PyAvSource no longer decodes through the wrapped method (renamed, say)."""
    if PyAvResizeSource.resized_frames == 0:
        raise RuntimeError(f"{DECODER_NAME}: no frame went through the resize hook; "
                           "PyAvSource's decode loop changed, update benchmarks/resize_source.py")


def register(size: int) -> str:
    """Add this source to fsrun's decoder table for this process; returns its decoder name."""
    from fsrun import sources  # noqa: PLC0415

    PyAvResizeSource.size = int(size)
    sources.SOURCES[DECODER_NAME] = TABLE_ENTRY
    return DECODER_NAME
