"""Is a missed clip missed for its colours or for its picture? (one clip, several looks)

`python -m benchmarks.experiments clip-looks --video V --truth T --package NAME=PKG ...` decodes
one clip, writes it again in several looks (as it is, grey, its channels in two other orders,
its brightness inverted, darker), each frame at its own timestamp (H.264, near lossless),
and grades every package on every look (raw per-frame positions against the truth, one model
session per package). A miss that stays in grey and darker looks but goes away with swapped
channels comes from the brightness pattern, not from a hue. Writes clip_looks.json and .md.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.files import write_json_and_markdown
from fsrun.groundtruth.synth.clips import VFR, CodecSpec, encode_video

LOOKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {  # name -> RGB frame to RGB frame
    "as it is": lambda f: f,
    "grey": lambda f: np.repeat(f.mean(2, keepdims=True), 3, 2).round().astype(np.uint8),
    "BGR": lambda f: np.ascontiguousarray(f[..., ::-1]),
    "GBR": lambda f: np.ascontiguousarray(f[..., [1, 2, 0]]),
    "inverted": lambda f: 255 - f,
    "darker": lambda f: (f * 0.6).round().astype(np.uint8),
}


@dataclass
class ClipLooksConfig:
    video: Path  # the clip
    truth: Path  # its truth funscript
    packages: dict[str, Path]  # label -> model package


# near lossless H.264; the one clip writer keeps each frame's time (VFR mode: a 1 ms time base)
NEAR_LOSSLESS = CodecSpec("libx264", "mp4", ".mp4",
                          {"preset": "veryfast", "crf": "4", "x264-params": "mbtree=0"})


def measure(config: ClipLooksConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    import av  # noqa: PLC0415

    from fsrun.groundtruth.grade import TruthClip, grade  # noqa: PLC0415

    with av.open(str(config.video)) as source:
        stream = source.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), f.time) for f in source.decode(stream)]
    if len(frames) < 2:
        raise ValueError(f"{config.video}: {len(frames)} frames decoded; a clip needs two or more")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fsrun-clip-looks-") as scratch:
        clips = []
        for i, (name, look) in enumerate(LOOKS.items()):
            path = Path(scratch) / f"look{i}.mp4"
            height, width = frames[0][0].shape[:2]
            encode_video(path, NEAR_LOSSLESS, (look(rgb) for rgb, _ in frames),
                         np.array([t for _, t in frames]), VFR, width, height)
            clips.append(TruthClip(path, config.truth, {"look": name}))
        for label, package in config.packages.items():
            for done in grade(package, clips):
                rows.append({"package": label, "look": done.clip.labels["look"],
                             "r": round(done.raw.pearson_r, 3)})
            log(f"{label}: " + ", ".join(f"{r['look']} {r['r']}" for r in rows
                                         if r["package"] == label))
    return {"video": config.video.name, "frames": len(frames),
            "packages": {k: str(v) for k, v in config.packages.items()},
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}


def write(out: Path, results: dict[str, Any], name: str = "clip_looks") -> tuple[Path, Path]:
    looks = list(LOOKS)
    lines = [f"# {results['video']} in several looks", "",
             f"Pearson r of the raw per-frame positions against the truth ({results['frames']} "
             f"frames), measured {results['measured']}.", "",
             "| package | " + " | ".join(looks) + " |", "| --- |" + " --- |" * len(looks)]
    for label in results["packages"]:
        r = {row["look"]: row["r"] for row in results["rows"] if row["package"] == label}
        lines.append(f"| {label} | " + " | ".join(f"{r[look]:.2f}" for look in looks) + " |")
    return write_json_and_markdown(out, name, results, "\n".join(lines) + "\n")
