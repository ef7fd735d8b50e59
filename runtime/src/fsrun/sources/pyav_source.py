"""Decode with FFmpeg through PyAV on the CPU: threaded decode, container timestamps, host frames.

Only frames the selector keeps are converted to RGB (the conversion costs more than decoding
on small models), and they are cropped before they are batched. With `resize_to`, swscale crops
and scales each kept frame to the model's input size in one pass straight from YUV (an FFmpeg
filter graph), so the encoder's in-graph resize has nothing left to do: on the CPU that is far
cheaper than a full-size RGB frame resized inside the graph.
"""
from __future__ import annotations

import heapq
import os
import stat
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fsrun.crop import Crop, apply_crop
from fsrun.errors import InputError
from fsrun.sources.base import FrameBatch, FrameSelector, VideoInfo


def _open_container(path: Path) -> Any:
    import av  # noqa: PLC0415 - keeps `import fsrun.sources` cheap

    if not path.is_file():
        kind = _not_a_file(path)
        raise InputError(f"{path}: {kind}" if kind else f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot open as a video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    if container.streams.video[0].codec_context is None:
        container.close()
        raise InputError(f"{path}: its video codec cannot be decoded by this FFmpeg build")
    return container


# What a path that exists but is no regular file is, by stat's file type.
_FILE_TYPES: dict[int, str] = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a device",
                               stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket",
                               stat.S_IFDIR: "a folder"}


def _not_a_file(path: Path) -> str | None:
    """'not a video file: it is a named pipe (FIFO)' for a path that exists but is no regular
    file (fsrun seeks in a video, so it reads only files); None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    kind = _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
    return f"not a video file: it is {kind}; fsrun reads video files only (it seeks in them)"


def _upright(image: np.ndarray, frame: Any) -> np.ndarray:
    """Apply the display matrix's rotation (phones store portrait video sideways).

    `frame.rotation` is the counterclockwise angle that shows the frame as intended, the
    convention of FFmpeg's av_display_rotation_get; np.rot90 also turns counterclockwise.
    """
    quarter_turns = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return np.rot90(image, k=quarter_turns) if quarter_turns else image


def _reason(exc: BaseException) -> str:
    if getattr(exc, "strerror", None):  # FFmpeg errors: the message without errno and path
        return str(exc.strerror)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# Containers whose header duration is an end time on the file's clock (Matroska's segment
# duration counts from the timeline's zero), not a length from the first timestamp.
DURATION_FROM_ZERO: tuple[str, ...] = ("matroska",)
# Containers whose header counts the frames it will show (AVI's total frames, held frames
# included): that count at the stated rate is the length the header claims, even when the index
# that would give the stream's duration was cut off with the end of the file.
HEADER_FRAME_COUNT: tuple[str, ...] = ("avi",)


def clock_offset(container: Any) -> float:
    """Seconds on the file's clock where players start (FFmpeg's start time: an MPEG-TS from a
    recorder starts anywhere, an MKV cut from a stream where the cut fell); 0 when unknown."""
    start = container.start_time
    return start / 1_000_000 if start is not None else 0.0


def _video_info(path: Path, container: Any) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    tagged = _tagged_duration(stream.metadata.get("DURATION", ""))
    formats = set(container.format.name.split(","))
    offset = clock_offset(container)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif tagged is not None:  # Matroska/WebM: the video track's own length, not the longest
        duration = tagged - offset if formats & set(DURATION_FROM_ZERO) else tagged
    elif container.duration is not None:
        duration = container.duration / 1_000_000
        duration -= offset if formats & set(DURATION_FROM_ZERO) else 0.0
    else:
        duration = 0.0
    frames = int(stream.frames or 0)
    if formats & set(HEADER_FRAME_COUNT) and frames and fps > 0:
        duration = max(duration, frames / fps)
    return VideoInfo(path=str(path), width=int(ctx.width), height=int(ctx.height), fps=fps,
                     duration_s=max(0.0, duration), codec=str(ctx.name), frame_count=frames,
                     clock_offset_s=offset)


def _tagged_duration(text: str) -> float | None:
    """Seconds from a Matroska DURATION tag ("00:00:10.000000000"), None when absent or odd."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def quarter_turns(path: Path | str) -> int:
    """Quarter turns counterclockwise that show the video upright (its display matrix), read
    from its first frame: PyAV gives no stream-level getter. 0 when no frame decodes."""
    import av  # noqa: PLC0415

    container = _open_container(Path(path))
    try:
        for frame in container.decode(container.streams.video[0]):
            return int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    except av.error.FFmpegError:
        pass
    finally:
        container.close()
    return 0


def probe_video(path: Path | str) -> VideoInfo:
    """Read the container header only (no decoding): size, rate, duration, codec."""
    path = Path(path)
    container = _open_container(path)
    try:
        return _video_info(path, container)
    finally:
        container.close()


# Largest host batch in bytes (--batch is capped by it). glibc serves a freed block to the next
# allocation only below its mmap ceiling (dynamic, at most 32 MiB, and trimmed from the heap top);
# larger batches get fresh zeroed pages from the kernel every time. 720p full-size frames, tiny
# model, --resize graph, 1800 frames: 16 a batch (44 MB) 1.28M page faults, 4.0 s system time,
# wall 7.9 s; capped at 24 MiB (8 a batch) 140k, 1.2 s, 5.5 s; at 12 MiB (4) 81k, 0.8 s, 4.9 s.
HOST_BATCH_BYTES = 12 << 20
# swscale filter for --resize source; bilinear matches the encoder graph's own Resize.
SCALE_FLAGS = "bilinear"


class _CropScale:
    """FFmpeg filter graph: crop (exact, in stored pixels) -> scale to size x size -> rgb24.

    `crop` only moves plane pointers, so only the kept region is scaled; built from the first
    frame and rebuilt if the stream changes size or pixel format mid-way.
    """

    def __init__(self, crop: Crop | None, size: int):
        self.crop = crop
        self.size = size
        self._graph: Any = None
        self._shape: tuple[int, int, str] | None = None

    def _build(self, frame: Any) -> None:
        import av.filter  # noqa: PLC0415

        graph = av.filter.Graph()
        nodes = [graph.add_buffer(width=frame.width, height=frame.height,
                                  format=frame.format.name,
                                  time_base=frame.time_base or Fraction(1, 1000))]
        if self.crop is not None:
            c = self.crop
            nodes.append(graph.add("crop", f"{c.width}:{c.height}:{c.x}:{c.y}:exact=1"))
        nodes.append(graph.add("scale", f"{self.size}:{self.size}:flags={SCALE_FLAGS}"))
        nodes.append(graph.add("format", "rgb24"))
        nodes.append(graph.add("buffersink"))
        for upstream, downstream in zip(nodes, nodes[1:]):
            upstream.link_to(downstream)
        graph.configure()
        self._graph = graph
        self._shape = (frame.width, frame.height, frame.format.name)

    def __call__(self, frame: Any) -> np.ndarray:
        if self._shape != (frame.width, frame.height, frame.format.name):
            self._build(frame)
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


# Frames held back so that their timestamps can be put in order (see _display_times). B-frame
# streams in AVI carry timestamps up to 3 frames away from their place (pianist.avi); a frame
# of 1080p YUV is about 3 MB.
REORDER_DEPTH = 4


def _display_times(frames: Iterator[Any], time_base: Fraction, path: Path, origin: float = 0.0
                   ) -> Iterator[tuple[Any, float]]:
    """(frame, its time in seconds from origin), frames in the decoder's (display) order.

    Containers without presentation times (AVI) give a B-frame stream's frames the timestamps
    of their packets, in decoding order: the right set of times, attached to the wrong frames.
    The k-th frame shown is the k-th smallest of them, so each frame takes the smallest time
    not yet used among those seen up to REORDER_DEPTH frames later. Where timestamps already
    increase (every MP4, MKV, WebM), each frame keeps its own.
    """
    pending: deque[Any] = deque()
    times: list[float] = []
    for frame in frames:
        stamp = frame.pts if frame.pts is not None else frame.dts
        if stamp is None:
            raise InputError(f"{path}: a frame has no timestamp; remux the file "
                             "(ffmpeg -i in -c copy out.mkv)")
        heapq.heappush(times, float(stamp * (frame.time_base or time_base)))
        pending.append(frame)
        if len(pending) > REORDER_DEPTH:
            yield pending.popleft(), heapq.heappop(times) - origin
    while pending:
        yield pending.popleft(), heapq.heappop(times) - origin


class PyAvSource:
    """VideoSource over FFmpeg. Counts frames decoded and converted for the run report."""

    name = "pyav"

    def __init__(self, path: Path | str, crop: Crop | None = None, device_id: int = 0,
                 threads: int = 0, resize_to: int | None = None):
        self.path = Path(path)
        self.crop = crop
        self.threads = threads  # FFmpeg decode threads; 0 lets FFmpeg pick
        self.resize_to = resize_to  # square size swscale scales kept frames to; None = as decoded
        self._crop_scale = _CropScale(crop, resize_to) if resize_to else None
        self._container = _open_container(self.path)
        self.info = _video_info(self.path, self._container)
        if crop is not None and (crop.x + crop.width > self.info.width
                                 or crop.y + crop.height > self.info.height):
            self.close()
            raise InputError(f"{self.path}: crop {crop} does not fit in "
                             f"{self.info.width}x{self.info.height}")
        self.frames_decoded = 0  # frames out of the decoder
        self.frames_converted = 0  # frames converted to RGB (the ones kept)
        self.packets_damaged = 0  # packets the decoder or demuxer rejected (frames lost)
        self.repeated_stamps = 0  # frames shown at the time of the one before (held frames)
        self.first_pts_s: float | None = None  # the first decoded frame's time
        self.last_pts_s: float | None = None  # the last decoded frame's time
        self._ran_to_end = False  # decoding reached the end of the stream from its start
        self.seek_to: float | None = None  # seconds: start near here (keyframe before it)

    def batches(self, selector: FrameSelector, batch_size: int) -> Iterator[FrameBatch]:
        import av  # noqa: PLC0415

        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        time_base: Fraction = stream.time_base
        if self.seek_to is not None and self.seek_to > 0:
            self._seek(stream, self.seek_to)
        frames: list[np.ndarray] = []
        stamps: list[float] = []
        past_end = getattr(selector, "past_end", None)
        seeking = self.seek_to is not None and self.seek_to > 0
        for frame, pts_s in self._timed_frames(stream, time_base, seeking, av.error.FFmpegError):
            self.frames_decoded += 1
            if self.last_pts_s is not None and pts_s <= self.last_pts_s:
                self.repeated_stamps += 1
            self.last_pts_s = pts_s if self.last_pts_s is None else max(pts_s, self.last_pts_s)
            if self.first_pts_s is None:
                self.first_pts_s = pts_s
            if past_end is not None and past_end(pts_s):
                break
            if not selector.accept(pts_s):
                continue
            rgb = self._to_rgb(frame)
            self.frames_converted += 1
            frames.append(np.ascontiguousarray(rgb))
            stamps.append(pts_s * 1000.0)
            if len(frames) >= min(batch_size, max(1, HOST_BATCH_BYTES // rgb.nbytes)):
                yield FrameBatch(np.stack(frames), np.asarray(stamps, dtype=np.float64))
                frames, stamps = [], []
        else:
            self._ran_to_end = not seeking
        if self.frames_decoded == 0 and not seeking:
            raise InputError(f"{self.path}: no frame could be decoded "
                             f"({self.packets_damaged} damaged packets)")
        if frames:
            yield FrameBatch(np.stack(frames), np.asarray(stamps, dtype=np.float64))

    def _timed_frames(self, stream: Any, time_base: Fraction, seeking: bool,
                      ffmpeg_error: type) -> Iterator[tuple[Any, float]]:
        """(frame, presented time) in display order. A seek that lands past its target (MPEG-TS
        and other containers without an index find keyframes by guessing byte positions)
        would skip frames the run needs: decoding then starts again from the beginning."""
        def timed() -> Iterator[tuple[Any, float]]:
            decoded = self._decode_skipping_damage(stream, ffmpeg_error)
            return _display_times(decoded, time_base, self.path, self.info.clock_offset_s)

        frames = timed()
        if seeking:
            first = next(frames, None)
            if first is None or first[1] > self.seek_to + 1e-6:  # past it, or past the end
                self._container.seek(0)  # the stream's start; the selector skips what it has
                frames = timed()
            else:
                yield first
        yield from frames

    def _to_rgb(self, frame: Any) -> np.ndarray:
        """Crop in stored pixels (the coordinates probe reports), scale if asked, turn upright.

        A square scaled frame turns upright the same as turning first and scaling after.
        """
        if self._crop_scale is not None:
            return _upright(self._crop_scale(frame), frame)
        return _upright(apply_crop(frame.to_ndarray(format="rgb24"), self.crop), frame)

    def _decode_skipping_damage(self, stream: Any, ffmpeg_error: type) -> Iterator[Any]:
        """Frames in order; a packet the decoder rejects costs its frame, not the run.

        Timestamps come from the packets that did decode, so timing stays right across a gap.
        A container that cannot be read further (cut off) ends the stream where it breaks.
        """
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except ffmpeg_error:
                self.packets_damaged += 1
                return
            try:
                decoded = packet.decode()
            except ffmpeg_error:
                self.packets_damaged += 1
                continue
            yield from decoded

    def _uncoded(self) -> int:
        """Frames the header counts that never came out of the decoder (stream read to end)."""
        return max(0, self.info.frame_count - self.frames_decoded) if self._ran_to_end else 0

    def _stops_early(self) -> bool:
        """The decoded frames end more than one frame interval (beyond the last frame's own)
        before the length the header claims: the rest of the file is gone (a cut-off
        download), not held."""
        if self.last_pts_s is None or self.info.duration_s <= 0 or self.info.fps <= 0:
            return False
        return self.last_pts_s + 2.0 / self.info.fps < self.info.duration_s

    def _held_in_span(self) -> int:
        """Uncoded frames inside the span the decoded frames cover (held there); those after
        the last decoded frame of a file that stops early are missing, not held."""
        if self.first_pts_s is None or self.last_pts_s is None or self.info.fps <= 0:
            return 0
        shown = int(round((self.last_pts_s - self.first_pts_s) * self.info.fps)) + 1
        return min(self._uncoded(), max(0, shown - self.frames_decoded))

    @property
    def frames_damaged(self) -> int:
        """Frames lost where the decoder or demuxer reported an error: rejected packets, and
        the frames the header promised after them when reading broke off."""
        return max(self.packets_damaged, self._uncoded()) if self.packets_damaged else 0

    @property
    def frames_missing(self) -> int:
        """Frames the header promises after the point where a file that read cleanly stops
        (a cut-off download in a container whose index or header survived)."""
        if self.packets_damaged or not self._stops_early():
            return 0
        return self._uncoded() - self._held_in_span()

    @property
    def frames_held(self) -> int:
        """Frames the file shows again rather than codes anew: index entries with no coded
        frame (AVI's "show the previous frame again"), repeated timestamps. Not damage."""
        if self.packets_damaged:
            return self.repeated_stamps
        if self._stops_early():
            return self.repeated_stamps + self._held_in_span()
        return self.repeated_stamps + self._uncoded()

    def _seek(self, stream: Any, seconds: float) -> None:
        """Jump to the keyframe at or before `seconds`; the selector skips what comes before."""
        target = int((seconds + self.info.clock_offset_s) / stream.time_base)
        try:
            self._container.seek(target, stream=stream, backward=True, any_frame=False)
        except Exception:  # noqa: BLE001 - unseekable input: decode from the start instead
            self._container.seek(0)

    def frame_at(self, seconds: float) -> np.ndarray:
        """The frame shown at `seconds` on the presented clock (the last one that starts at or
        before it), RGB uint8 [H, W, 3], upright and whole (no crop, no scaling): what a
        viewer shows at that time. InputError when the video has no frame there."""
        import av  # noqa: PLC0415

        stream = self._container.streams.video[0]
        self.seek_to = max(0.0, seconds)  # _timed_frames starts again if the seek overshoots
        self._seek(stream, self.seek_to)
        chosen = None
        for frame, pts_s in self._timed_frames(stream, stream.time_base, seconds > 0,
                                               av.error.FFmpegError):
            if chosen is not None and pts_s > seconds + 1e-6:
                break
            chosen = frame
        if chosen is None:
            raise InputError(f"{self.path}: no frame at {seconds:.3f} s")
        return np.ascontiguousarray(_upright(chosen.to_ndarray(format="rgb24"), chosen))

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> PyAvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
