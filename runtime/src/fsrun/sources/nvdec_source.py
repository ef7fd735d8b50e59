"""Decode on the GPU with NVDEC through PyNvVideoCodec 2.x; frames stay in device memory.

PyAV demuxes on the host (it is already a dependency) and hands compressed packets, with their
container timestamps, to PyNvVideoCodec's decoder, which outputs interleaved RGB on the device.
Timestamps therefore come from the very packets the PyAV source sees, in the same stream time
base, so both sources report identical times. (PyNvVideoCodec's own frame rate is an integer in
some versions, 29.97 reading as 29, so nothing here is derived from it.) The crop and the batch
are one device-to-device copy per kept frame, on the stream shared with the backends.
"""
from __future__ import annotations

import ctypes
import importlib.util
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from fsrun.crop import Crop
from fsrun.errors import FsError, InputError, MissingDependencyError, UsageError
from fsrun.gpu import GPU_EXTRA, BatchAssembler, get_runtime
from fsrun.gpu import is_available as gpu_libraries_available
from fsrun.sources.base import FrameBatch, FrameSelector, VideoInfo
from fsrun.sources.pyav_source import _open_container, _reason, _video_info

# FFmpeg codec name -> PyNvVideoCodec cudaVideoCodec member.
NVDEC_CODECS: dict[str, str] = {
    "h264": "H264",
    "hevc": "HEVC",
    "vp9": "VP9",
    "vp8": "VP8",
    "av1": "AV1",
    "mpeg1video": "MPEG1",
    "mpeg2video": "MPEG2",
    "mpeg4": "MPEG4",
    "vc1": "VC1",
}
# MP4/MKV store H.264/HEVC length-prefixed; the NVDEC parser wants Annex-B start codes.
ANNEXB_FILTERS: dict[str, str] = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
# NVDEC decodes H.264 only as 8-bit 4:2:0.
H264_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p", "nv12"})


def _av1_decoder(cc: tuple[int, int]) -> bool:
    # AV1 NVDEC arrived with GA10x (8.6); the datacenter chips GA100 (8.0) and GH100 (9.0) lack it.
    return cc >= (8, 6) and cc != (9, 0)


# Codec -> does a GPU of this compute capability have the hardware decoder for it.
CODEC_HARDWARE: dict[str, Callable[[tuple[int, int]], bool]] = {
    "av1": _av1_decoder,
}


def codec_support(codec: str, pixel_format: str | None, compute_capability: tuple[int, int],
                  gpu_name: str = "this GPU") -> tuple[bool, str]:
    """Whether NVDEC on this GPU can decode the stream, and why not (for the fallback notice)."""
    if codec not in NVDEC_CODECS:
        return False, f"NVDEC cannot decode {codec}; decoding on the CPU with PyAV"
    has_hardware = CODEC_HARDWARE.get(codec, lambda cc: True)
    if not has_hardware(tuple(compute_capability)):
        return False, (f"{gpu_name} has no {codec.upper()} hardware decoder; decoding on the CPU "
                       f"with PyAV")
    if codec == "h264" and pixel_format and pixel_format not in H264_PIXEL_FORMATS:
        return False, (f"NVDEC decodes H.264 only as 8-bit 4:2:0, not {pixel_format}; decoding "
                       f"on the CPU with PyAV")
    return True, ""


def is_available() -> bool:
    """Cheap check: PyNvVideoCodec and a CUDA array library are installed (nothing imported)."""
    try:
        found = importlib.util.find_spec("PyNvVideoCodec") is not None
    except (ImportError, ValueError):
        found = False
    return found and gpu_libraries_available()


def import_nvc() -> Any:
    try:
        import PyNvVideoCodec  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("PyNvVideoCodec", GPU_EXTRA) from None
    except Exception as exc:  # installed, but it raises RuntimeError when the driver's
        # NVENC/NVDEC libraries (libnvidia-encode, libnvcuvid) are not on this machine
        raise UsageError(f"PyNvVideoCodec is installed but cannot load ({_reason(exc)}); the "
                         "NVIDIA driver's video libraries are missing; use --decoder pyav"
                         ) from None
    return PyNvVideoCodec


def supports(path: Path | str, device_id: int = 0) -> tuple[bool, str]:
    """Whether NVDEC can decode this file here, and the reason when it cannot."""
    if not is_available():
        return False, f"PyNvVideoCodec is not installed (pip install '{GPU_EXTRA}'); using PyAV"
    try:
        import_nvc()
    except FsError as exc:
        return False, str(exc).replace("use --decoder pyav", "using PyAV")
    try:
        container = _open_container(Path(path))
    except InputError as exc:
        return False, str(exc)
    try:
        ctx = container.streams.video[0].codec_context
        codec, pixel_format = str(ctx.name), (ctx.format.name if ctx.format else None)
    finally:
        container.close()
    try:
        runtime = get_runtime(device_id)
        cc, name = runtime.compute_capability(), runtime.device_name()
    except FsError as exc:
        return False, str(exc)
    return codec_support(codec, pixel_format, cc, name)


class _PacketFeeder:
    """PyAV packets -> PyNvVideoCodec PacketData (Annex-B, container pts)."""

    def __init__(self, nvc: Any, container: Any, stream: Any, codec: str):
        from av.bitstream import BitStreamFilterContext  # noqa: PLC0415

        self._nvc = nvc
        self._container = container
        self._stream = stream
        name = ANNEXB_FILTERS.get(codec)
        self._filter = BitStreamFilterContext(name, stream) if name else None
        self._held: Any = None  # the buffer of the packet being decoded must outlive Decode()

    def packets(self) -> Iterator[Any]:
        for packet in self._container.demux(self._stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream packet
            filtered = self._filter.filter(packet) if self._filter is not None else (packet,)
            for part in filtered:
                data = bytes(part)
                if not data:
                    continue
                yield self._packet_data(data, part.pts if part.pts is not None else part.dts)
        if self._filter is not None:
            for part in self._filter.filter(None):  # drain what the filter still holds
                data = bytes(part)
                if data:
                    yield self._packet_data(data, part.pts if part.pts is not None else part.dts)

    def _packet_data(self, data: bytes, pts: int | None) -> Any:
        buffer = ctypes.create_string_buffer(data, len(data))
        self._held = buffer
        packet = self._nvc.PacketData()
        packet.bsl_data = ctypes.addressof(buffer)
        packet.bsl = len(data)
        if pts is None:
            raise InputError("a packet has no timestamp; remux the file "
                             "(ffmpeg -i in -c copy out.mkv)")
        packet.pts = int(pts)
        return packet

    def flush_packet(self) -> Any:
        return self._nvc.PacketData()  # empty packet: the decoder returns what it still holds


def frame_interface(frame: Any, stream_handle: int) -> dict[str, Any]:
    """CUDA array interface [H, W, 3] of a decoded RGB frame.

    DecodedFrame.cuda() gives per-plane views (one plane for interleaved RGB). The DLPack route
    is the fallback; PyNvVideoCodec 2.x needs the consumer's stream passed to __dlpack__
    explicitly there, or the export is unordered with respect to the decode.
    """
    if hasattr(frame, "cuda"):
        views = frame.cuda()
        view = views[0] if isinstance(views, (list, tuple)) else views
        return view.__cuda_array_interface__
    import cupy  # noqa: PLC0415  (DLPack import needs CuPy)

    class _WithStream:
        def __dlpack__(self, stream: Any = None) -> Any:
            return frame.__dlpack__(stream_handle)

        def __dlpack_device__(self) -> Any:
            return frame.__dlpack_device__()

    return cupy.from_dlpack(_WithStream()).__cuda_array_interface__


class NvdecSource:
    """VideoSource decoding with NVDEC; yields FrameBatch(on_device=True)."""

    name = "nvdec"
    supports = staticmethod(supports)

    def __init__(self, path: Path | str, crop: Crop | None = None, device_id: int = 0):
        self._nvc = import_nvc()
        self.path = Path(path)
        self.crop = crop
        self.device_id = device_id
        self.seek_to: float | None = None  # seconds: start near here (keyframe before it)
        self.frames_decoded = 0  # frames out of the decoder
        self.frames_converted = 0  # frames copied into batches (the ones kept)
        self._container = _open_container(self.path)
        try:
            self._stream = self._container.streams.video[0]
            self.info: VideoInfo = _video_info(self.path, self._container)
            self._runtime = get_runtime(device_id)
            ctx = self._stream.codec_context
            ok, reason = codec_support(self.info.codec, ctx.format.name if ctx.format else None,
                                       self._runtime.compute_capability(),
                                       self._runtime.device_name())
            if not ok:
                raise InputError(f"{self.path}: {reason.split(';')[0]}; use --decoder pyav")
            if crop is not None and (crop.x + crop.width > self.info.width
                                     or crop.y + crop.height > self.info.height):
                raise InputError(f"{self.path}: crop {crop} does not fit in "
                                 f"{self.info.width}x{self.info.height}")
            self._decoder = self._create_decoder()
        except BaseException:
            self._container.close()
            raise

    def _create_decoder(self) -> Any:
        nvc = self._nvc
        try:
            return nvc.CreateDecoder(
                gpuid=self.device_id,
                codec=getattr(nvc.cudaVideoCodec, NVDEC_CODECS[self.info.codec]),
                cudacontext=0,  # the device's primary context, as CuPy/cuda-python use
                cudastream=self._runtime.stream_handle,
                usedevicememory=True,
                outputColorType=nvc.OutputColorType.RGB,
            )
        except Exception as exc:  # PyNvVideoCodec raises its own exception types
            raise InputError(f"{self.path}: NVDEC could not start ({_reason(exc)}); "
                             f"use --decoder pyav") from None

    def _decoded(self) -> Iterator[Any]:
        """Every frame in display order, each with getPTS() in stream time-base units."""
        feeder = _PacketFeeder(self._nvc, self._container, self._stream, self.info.codec)
        try:
            for packet in feeder.packets():
                yield from self._decoder.Decode(packet)
            while True:
                tail = list(self._decoder.Decode(feeder.flush_packet()))
                if not tail:
                    return
                yield from tail
        except FsError:
            raise
        except Exception as exc:  # decoder errors: unsupported profile, corrupt stream
            raise InputError(f"{self.path}: NVDEC decoding failed ({_reason(exc)}); "
                             f"use --decoder pyav") from None

    def batches(self, selector: FrameSelector, batch_size: int) -> Iterator[FrameBatch]:
        time_base: Fraction = self._stream.time_base
        if self.seek_to is not None and self.seek_to > 0:
            self._seek(self.seek_to)
        assembler = BatchAssembler(self._runtime, self.info.height, self.info.width, batch_size,
                                   self.crop)
        stamps: list[float] = []
        past_end = getattr(selector, "past_end", None)
        for frame in self._decoded():
            self.frames_decoded += 1
            pts_s = float(int(frame.getPTS()) * time_base) - self.info.clock_offset_s
            if past_end is not None and past_end(pts_s):
                break
            if not selector.accept(pts_s):
                continue
            assembler.add(_FrameView(frame_interface(frame, self._runtime.stream_handle)))
            self.frames_converted += 1
            stamps.append(pts_s * 1000.0)
            if assembler.full:
                yield FrameBatch(assembler.take(), np.asarray(stamps, np.float64), on_device=True)
                stamps = []
        if stamps:
            yield FrameBatch(assembler.take(), np.asarray(stamps, np.float64), on_device=True)

    def frame_at(self, seconds: float) -> Any:
        """The viewer's picture, from PyAV: one frame to the host is not NVDEC's work."""
        from fsrun.sources.pyav_source import PyAvSource  # noqa: PLC0415

        with PyAvSource(self.path) as source:
            return source.frame_at(seconds)

    def _seek(self, seconds: float) -> None:
        """Jump to the keyframe at or before `seconds`; the selector skips what comes before."""
        target = int((seconds + self.info.clock_offset_s) / self._stream.time_base)
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except Exception:  # noqa: BLE001 - unseekable input: decode from the start instead
            self._container.seek(0)

    def close(self) -> None:
        self._decoder = None
        self._container.close()

    def __enter__(self) -> NvdecSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FrameView:
    """Carries a CUDA array interface dict for BatchAssembler.add()."""

    def __init__(self, interface: dict[str, Any]):
        self.__cuda_array_interface__ = interface
