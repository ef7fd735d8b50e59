"""Training data: (video, funscript) pairs, decoded the way fsrun decodes them.

Frames are taken with fsrun's own source and timestamp sampler at the model's fps, so training
and inference see the same frames; each frame's label is the funscript interpolated at that
frame's presentation time (pos 0-100 -> 0..1). A clip that `fsrun synth` rendered also says
where its target is drawn in each frame (its truth file records the seed the scene comes from),
an auxiliary answer the frame stage may learn beside the position. The split is by video, never by window:
neighbouring windows of one video are nearly identical and would leak into validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fsrun.axes import SINGLE, STROKE
from fsrun.errors import UsageError
from fsrun.files.funscript import default_output, read_actions, read_funscript, truth_path, written_by_fsrun
from fsrun.run.sampling import TimestampSampler
from fsrun.sources import open_source

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


@dataclass(frozen=True)
class Pair:
    video: Path  # the clip
    funscript: Path  # its labels, same basename
    axis_scripts: tuple[Path | None, ...] = ()  # labels of the axes after the stroke, in the
    # order trained (None: the video has none for that axis, masked out of the loss)


@dataclass
class DecodedVideo:
    pair: Pair  # where it came from
    frames: np.ndarray  # uint8 [N, S, S, 3], already resized to the model's input size
    pts_ms: np.ndarray  # float64 [N] presentation times
    labels: np.ndarray  # float32 [N] positions in 0..1 at those times; [N, C] with several
    # axes, nan where a video has no label for an axis
    places: np.ndarray | None = None  # float32 [N, 3] target centre x, y and size, or None

    def __len__(self) -> int:
        return len(self.pts_ms)


def label_file(video: Path, axis: str = STROKE) -> Path | None:
    """VIDEO.truth.funscript, else a VIDEO.funscript that fsrun did not write (VIDEO.roll.
    truth.funscript and VIDEO.roll.funscript for the roll, and so on); None when neither."""
    return next((s for s in (truth_path(video, axis), default_output(video, axis))
                 if s.is_file() and not written_by_fsrun(s)), None)


def find_pairs(data_dir: Path, axes: tuple[str, ...] = SINGLE) -> list[Pair]:
    """Every video in data_dir (recursively) with stroke labels of the same basename, and the
    labels it has of the other axes.

    Labels are VIDEO.truth.funscript (what `fsrun synth` writes) or else VIDEO.funscript, a
    creator's own script. A VIDEO.funscript that fsrun wrote is a prediction, not a label, and is
    never trained on."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UsageError(f"{data_dir}: training data folder not found")
    pairs = []
    for video in sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        script = label_file(video)
        if script is not None:
            pairs.append(Pair(video, script, tuple(label_file(video, a) for a in axes[1:])))
    if not pairs:
        raise UsageError(f"{data_dir}: no video with a .truth.funscript or .funscript (not one "
                         "fsrun wrote) of the same basename")
    return pairs


def split_by_video(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Shuffle whole videos with a seed; at least one video each side when there are two."""
    if not 0 <= val_fraction < 1:
        raise UsageError(f"validation fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = int(round(len(pairs) * val_fraction))
    if val_fraction > 0 and len(pairs) >= 2:
        n_val = min(max(n_val, 1), len(pairs) - 1)
    val = [pairs[i] for i in sorted(order[:n_val])]
    train = [pairs[i] for i in sorted(order[n_val:])]
    return train, val


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """The encoder's own bilinear resize, done once at load so memory stays small.

    The encoder resizes again inside, which is the identity at this size.
    """
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def decode_pair(pair: Pair, fps: float, input_size: int, crop: str = "full",
                batch_size: int = 64) -> DecodedVideo:
    """Sample a video at the model's fps with fsrun's sampler, resize, and label each frame."""
    chunks, stamps = [], []
    source = open_source(pair.video, decoder="pyav", crop=crop)
    try:
        for batch in source.batches(TimestampSampler(fps), batch_size):
            chunks.append(resize_frames(np.asarray(batch.frames), input_size))
            stamps.append(batch.pts_ms)
    finally:
        source.close()
    if not chunks:
        raise UsageError(f"{pair.video}: no frames decoded")
    pts_ms = np.concatenate(stamps)
    labels = _labels_at(pair.funscript, pts_ms)
    if pair.axis_scripts:
        labels = np.stack([labels, *(_labels_at(s, pts_ms) if s is not None
                                     else np.full(len(pts_ms), np.nan, np.float32)
                                     for s in pair.axis_scripts)], axis=1)
    return DecodedVideo(pair, np.concatenate(chunks), pts_ms, labels,
                        synth_places(pair.funscript, pts_ms, crop))


def _labels_at(script: Path, pts_ms: np.ndarray) -> np.ndarray:
    at_ms, pos = read_actions(script)
    return (np.interp(pts_ms, at_ms, pos) / 100.0).astype(np.float32)


# crops under which a synthetic clip's target place holds for the picture the model sees
_PLACES_HOLD = {("flat", "full"), ("sbs", "sbs-left")}


def synth_places(funscript: Path, pts_ms: np.ndarray, crop: str = "full") -> np.ndarray | None:
    """Where a synthetic clip's target is drawn at these times, as fractions of the picture the
    model sees; None for a creator's own script or a crop that cuts the view differently."""
    from fsrun.groundtruth.synth.clips import spec_from_truth, target_places  # noqa: PLC0415  (PyAV)

    spec = spec_from_truth(read_funscript(funscript, strict=False).get("metadata"))
    if spec is None or (spec.layout, crop) not in _PLACES_HOLD:
        return None
    return target_places(spec, pts_ms / 1000.0)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of windows at a stride, the last aligned to the last frame (as fsrun runs)."""
    if length < window:
        return []
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class WindowRef:
    video: int  # index into the decoded videos
    start: int  # first frame of the window


def random_windows(lengths: list[int], window: int, count: int,
                   rng: np.random.Generator) -> list[WindowRef]:
    """count windows, videos drawn in proportion to their usable length, starts uniform."""
    usable = np.array([max(n - window + 1, 0) for n in lengths], dtype=np.float64)
    if usable.sum() == 0:
        raise UsageError(f"every training video is shorter than the window ({window} frames)")
    videos = rng.choice(len(lengths), size=count, p=usable / usable.sum())
    return [WindowRef(int(v), int(rng.integers(0, usable[v]))) for v in videos]


def fixed_windows(lengths: list[int], window: int, stride: int) -> list[WindowRef]:
    """Deterministic windows for validation."""
    return [WindowRef(v, s) for v, n in enumerate(lengths) for s in window_starts(n, window, stride)]
