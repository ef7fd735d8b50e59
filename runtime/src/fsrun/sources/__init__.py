"""Video sources, chosen from a table and imported lazily (NVDEC needs optional GPU libraries)."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fsrun.crop import Crop, CropSpec, parse_crop, resolve_upright
from fsrun.tables import import_entry
from fsrun.sources.base import FrameBatch, FrameSelector, VideoInfo, VideoSource

# Decoder name -> "module:Class". Each class is constructed as Cls(path, crop=..., device_id=...).
SOURCES: dict[str, str] = {
    "pyav": "fsrun.sources.pyav_source:PyAvSource",
    "nvdec": "fsrun.sources.nvdec_source:NvdecSource",
}
DECODER_CHOICES: tuple[str, ...] = ("auto", *SOURCES)

__all__ = ["SOURCES", "DECODER_CHOICES", "Crop", "FrameBatch", "FrameSelector", "VideoInfo",
           "VideoSource", "load_source_class", "open_source", "probe", "resolve_crop", "supports",
           "upright_turns"]


def load_source_class(name: str) -> type:
    """Import the class for a decoder name; a missing optional library raises MissingDependencyError."""
    module, class_name = import_entry(SOURCES, name, "decoder", DECODER_CHOICES, "fsrun[gpu]")
    return getattr(module, class_name)


def supports(name: str, path: Path, device_id: int = 0) -> tuple[bool, str]:
    """Whether decoder `name` can be used for this file, and why not (the run plan's "auto"
    asks each in turn)."""
    if name == "pyav":
        return True, ""
    try:
        cls = load_source_class(name)
        module = importlib.import_module(cls.__module__)
        if hasattr(module, "is_available") and not module.is_available():
            return False, ""  # no GPU stack here: nothing worth telling the user
        if hasattr(cls, "supports"):
            ok, reason = cls.supports(path, device_id)
            return bool(ok), str(reason)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure in a probe means: use the next one
        return False, f"{name}: {exc}"


def probe(path: Path | str) -> VideoInfo:
    """Header-only look at a video (size, rate, duration, codec); no frames decoded."""
    from fsrun.sources.pyav_source import probe_video  # noqa: PLC0415

    return probe_video(path)


def upright_turns(path: Path | str) -> int:
    """Quarter turns (counterclockwise) that show a video upright; decodes its first frame."""
    from fsrun.sources.pyav_source import quarter_turns  # noqa: PLC0415

    return quarter_turns(path)


def resolve_crop(path: Path | str, spec: CropSpec, info: VideoInfo) -> Crop | None:
    """The crop box in stored pixels for a crop given on the upright picture (players' view)."""
    if spec.kind == "full":
        return None
    return resolve_upright(spec, info.width, info.height, upright_turns(path))


def open_source(path: Path | str, decoder: str = "pyav",
                crop: str | CropSpec | Crop | None = None, device_id: int = 0) -> Any:
    """Open a video with a named decoder (the run plan resolves "auto": plan.choose_decoder);
    the crop spec is resolved against its upright frame size."""
    name = decoder
    box = resolve_crop(path, parse_crop(crop), probe(path))
    cls = load_source_class(name)
    source = cls(Path(path), crop=box, device_id=device_id)
    source.decoder_name = name
    return source
