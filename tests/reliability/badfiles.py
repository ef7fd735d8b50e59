"""Makers of broken and unusual inputs: each writes one file into a folder and returns its path.

Every test builds its own file, so the suite needs no fixtures on disk and each case can be
reproduced by calling one function.
"""
from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_frames(count: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """[count, height, width, 3] uint8: a bright bar sweeping down over a noisy background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    frames = np.repeat(background[None], count, axis=0)
    bar = max(2, height // 8)
    for i in range(count):
        top = int((height - bar) * (0.5 + 0.5 * np.sin(i / 5.0)))
        frames[i, top:top + bar, :, :] = (230, 200, 40)
    return frames


def write_video(path: Path, count: int = 60, width: int = 64, height: int = 48, fps: int = 30,
                encoder: str = "libx264", pix_fmt: str = "yuv420p", gop: int | None = None,
                rotation: int | None = None, options: dict[str, str] | None = None,
                container_format: str = "mp4",
                container_options: dict[str, str] | None = None) -> Path:
    """Encode a clip of `count` frames with explicit timestamps (pts = index at 1/fps)."""
    path = Path(path)
    opts = {"preset": "ultrafast"} if encoder in ("libx264", "libx265") else {}
    if encoder == "libx265":
        opts["x265-params"] = "log-level=error"
    opts.update(options or {})
    with av.open(str(path), "w", format=container_format,
                 options=container_options or {}) as container:
        stream = container.add_stream(encoder, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(moving_frames(count, width, height)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def zero_byte(folder: Path) -> Path:
    path = Path(folder) / "empty.mp4"
    path.write_bytes(b"")
    return path


def text_as_mp4(folder: Path) -> Path:
    path = Path(folder) / "notes.mp4"
    path.write_text("This is a shopping list, not a video.\n" * 20, encoding="utf-8")
    return path


def _box_offsets(data: bytes, kind: bytes, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets of top-level boxes of a type within data[start:end] (ISO BMFF size+type headers)."""
    end = len(data) if end is None else end
    found, pos = [], start
    while pos + 8 <= end:
        size, name = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        if size < 8:
            break
        if name == kind:
            found.append(pos)
        pos += size
    return found


def truncated_mp4(folder: Path) -> Path:
    """A valid clip cut in the middle of its media data (mdat), as an interrupted download is."""
    path = write_video(Path(folder) / "truncated.mp4", count=90)
    data = path.read_bytes()
    mdat = _box_offsets(data, b"mdat")[0]
    size = struct.unpack(">I", data[mdat:mdat + 4])[0]
    path.write_bytes(data[:mdat + size // 2])
    return path


def audio_only(folder: Path) -> Path:
    path = Path(folder) / "podcast.mp4"
    rate = 16000
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(rate) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def undecodable_codec(folder: Path) -> Path:
    """An MP4 whose video track claims a codec FFmpeg has no decoder for (fourcc 'zzzz')."""
    path = write_video(Path(folder) / "alien_codec.mp4", count=30)
    data = bytearray(path.read_bytes())
    at = data.find(b"avc1")
    while at != -1:
        data[at:at + 4] = b"zzzz"
        at = data.find(b"avc1", at + 4)
    path.write_bytes(bytes(data))
    return path


def one_frame(folder: Path) -> Path:
    return write_video(Path(folder) / "one_frame.mp4", count=1)


def shorter_than_window(folder: Path, frames: int = 20) -> Path:
    return write_video(Path(folder) / "short.mp4", count=frames)


def odd_size(folder: Path) -> Path:
    """317x241: odd width and height need 4:4:4 (4:2:0 wants even sizes)."""
    return write_video(Path(folder) / "odd_317x241.mp4", count=45, width=317, height=241,
                       pix_fmt="yuv444p")


def rotated(folder: Path, degrees: int = 90) -> Path:
    """A 64x48 clip whose display matrix says: show it rotated (phones write these)."""
    return write_video(Path(folder) / "rotated.mp4", count=45, rotation=degrees)


def hevc_10bit(folder: Path) -> Path:
    return write_video(Path(folder) / "hevc10.mp4", count=45, encoder="libx265",
                       pix_fmt="yuv420p10le")


def corrupt_middle(folder: Path, count: int = 150, gop: int = 15) -> Path:
    """An H.264 clip with garbage written over packets in the middle of its mdat.

    Short GOPs let the decoder recover at the next keyframe, so most frames stay decodable.
    """
    path = write_video(Path(folder) / "corrupt_middle.mp4", count=count, gop=gop)
    data = bytearray(path.read_bytes())
    mdat = _box_offsets(bytes(data), b"mdat")[0]
    size = struct.unpack(">I", data[mdat:mdat + 4])[0]
    start, length = mdat + 8 + int(size * 0.45), max(64, size // 10)
    rng = np.random.default_rng(7)
    data[start:start + length] = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


# --- model package breakers: each edits a copy of a good package in place --------------------

def package_missing_file(package: Path) -> Path:
    (package / "head.onnx").unlink()
    return package


def package_wrong_sha(package: Path) -> Path:
    """Flip one byte of encoder.onnx: same size, different digest."""
    target = package / "encoder.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return package


def package_truncated_onnx(package: Path) -> Path:
    """Cut encoder.onnx in half and record the cut file's sha256, so only parsing can catch it."""
    import hashlib

    target = package / "encoder.onnx"
    data = target.read_bytes()[: target.stat().st_size // 2]
    target.write_bytes(data)
    meta_path = package / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["files"]["encoder.onnx"] = hashlib.sha256(data).hexdigest()
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return package


def package_meta_edit(package: Path, **changes: object) -> Path:
    """meta.json says something else (window, embedding_dim, fps) than the graphs hold."""
    meta_path = package / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update(changes)
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return package


def package_nan_weights(package: Path) -> Path:
    """Every float weight of head.onnx NaN (its sha256 recorded): a package that loads and
    verifies, and whose positions are NaN."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    target = package / "head.onnx"
    model = onnx.load(str(target))
    for weights in model.graph.initializer:
        if weights.data_type == onnx.TensorProto.FLOAT:
            nan = np.full_like(numpy_helper.to_array(weights), np.nan)
            weights.CopyFrom(numpy_helper.from_array(nan, weights.name))
    onnx.save(model, str(target))
    return package_meta_edit(package, files={
        **json.loads((package / "meta.json").read_text(encoding="utf-8"))["files"],
        "head.onnx": hashlib.sha256(target.read_bytes()).hexdigest()})


def package_newer_format(package: Path) -> Path:
    meta_path = package / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format_version"] = meta["format_version"] + 1
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return package


def package_escaping_path(package: Path) -> Path:
    """meta.json lists a file outside the package directory."""
    meta_path = package / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["files"]["../outside.onnx"] = meta["files"]["encoder.onnx"]
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return package


# Containers a download can be cut off in: name -> (muxer, suffix, muxer options). The MP4 puts
# its index first (faststart), so what is left of it still plays, as the MKV does.
CUT_OFF_CONTAINERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mkv": ("matroska", ".mkv", {}),
    "mp4_faststart": ("mp4", ".mp4", {"movflags": "faststart"}),
    "webm": ("webm", ".webm", {}),
}


def cut_off(folder: Path, container: str, seconds: float = 10.0, keep: float = 0.3) -> Path:
    """A 30 fps clip of `seconds` whose file keeps only its first `keep` part, as a download
    stopped early: the header still claims the whole duration."""
    muxer, suffix, options = CUT_OFF_CONTAINERS[container]
    encoder = "libvpx-vp9" if container == "webm" else "libx264"
    extra = {"deadline": "realtime", "cpu-used": "8"} if encoder == "libvpx-vp9" else {}
    path = write_video(Path(folder) / f"cut_{container}{suffix}", count=int(seconds * 30),
                       encoder=encoder, options=extra, container_format=muxer,
                       container_options=options)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def truncated_mp4_playable(folder: Path) -> Path:
    """Index (moov) first, media cut in half: the first half still decodes."""
    path = write_video(Path(folder) / "truncated_playable.mp4", count=90,
                       container_options={"movflags": "faststart"})
    data = path.read_bytes()
    mdat = _box_offsets(data, b"mdat")[0]
    size = struct.unpack(">I", data[mdat:mdat + 4])[0]
    path.write_bytes(data[:mdat + size // 2])
    return path
