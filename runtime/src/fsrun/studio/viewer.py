"""One video in the viewer: its raw positions, post-processing redrawn, frames, saving.

The raw per-frame positions come from a model session of the viewer's own (the queue's worker
has the other): the first look at a video encodes it into the embedding cache if it is not
there, after which a stride runs only the head and every other post-processing option (min
amplitude, RDP, stretch, invert, offset) only `postprocess.to_actions` on positions held in
memory: milliseconds for an hour of video.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fsrun
from fsrun.axes import AXES, STROKE
from fsrun.files.funscript import (TRUTH_SUFFIX, build_funscript, default_output, fsrun_metadata,
                             read_funscript, truth_path, write_funscript)
from fsrun.groundtruth.metrics import compare
from fsrun.files.atomic import write_atomic
from fsrun.files.outputs import Protected, load_json_object
from fsrun.run.postprocess import PostprocessOptions, to_actions
from fsrun.defaults import DEFAULT_STRIDE
from fsrun.run.request import RunHooks, RunWatch, SessionSpec, VideoRequest
from fsrun.sources import probe
from fsrun.sources.pyav_source import PyAvSource
from fsrun.studio.security import video_file

# Browsers play these in <video>; anything else is shown as the frame at the cursor.
PLAYABLE = {("mp4", "h264"), ("mp4", "av1"), ("mp4", "vp9"), ("webm", "vp9"), ("webm", "av1"),
            ("webm", "vp8"), ("mov", "h264"), ("m4v", "h264")}
FRAME_WIDTH = 640  # frames sent for the cursor are scaled to at most this wide
EDITED_BY = "fsrun studio (edited by hand)"  # generator of a script a person saved
SAVE_MARGIN_MS = 10_000.0  # how far past the video's end a saved point may lie


def read_script(path: Path) -> tuple[list[dict[str, int]] | None, dict[str, Any]]:
    """(actions, options) of the funscript at path: None when there is none; the options
    (stride, post-processing) only when fsrun wrote it, else {}."""
    if not path.is_file():
        return None, {}
    doc = read_funscript(path, strict=False)
    actions = [{"at": int(a["at"]), "pos": int(round(a["pos"]))} for a in doc["actions"]]
    meta = fsrun_metadata(doc)
    options = meta.get("options") if meta is not None else None
    return actions, options if isinstance(options, dict) else {}


class Viewer:
    def __init__(self, root: Path, spec: SessionSpec, hooks: RunHooks,
                 publish: Callable[[dict], None] = lambda event: None):
        self.root, self.spec, self.hooks, self.publish = Path(root), spec, hooks, publish
        self.lock = threading.Lock()  # one session, one thread at a time
        self.session: Any = None
        self.raw: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # (video, stride, crop) -> raw

    def close(self) -> None:
        with self.lock:
            if self.session is not None:
                self.session.close()
                self.session = None

    def use(self, spec: SessionSpec) -> None:
        """Another model from now on: its own session, nothing kept from the last one."""
        with self.lock:
            if self.session is not None:
                self.session.close()
            self.session, self.spec = None, spec
            self.raw.clear()

    def _watch(self, name: str) -> RunWatch:
        """Progress of a first look (encoding) or a stride change (the head) sent to the page,
        at most five times a second."""
        last = [0.0]

        def tell(stage: str, done: int, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or (total is not None and done >= total):
                last[0] = now
                self.publish({"type": "viewer", "video": name, "stage": stage, "done": done,
                              "total": total})

        return RunWatch(progress=lambda done, total: tell("encode", done, total),
                        head_progress=lambda done, total: tell("head", done, total))

    def _session(self) -> Any:
        from fsrun.run.session import ModelSession  # noqa: PLC0415

        if self.session is None:
            self.session = ModelSession.open(self.spec, self.hooks, start=False)
        return self.session

    def axes(self) -> tuple[str, ...]:
        """The axes the model gives (the stroke alone for most models)."""
        with self.lock:
            return self._session().axes

    def positions(self, name: str, stride: int, crop: str,
                  axis: str = STROKE) -> tuple[np.ndarray, np.ndarray]:
        """The raw positions of one axis (every axis cached in memory per stride and crop);
        ValueError for an axis the model does not give."""
        key = (name, stride, crop)
        with self.lock:
            session = self._session()
            if axis not in session.axes:
                raise ValueError(f"the model gives {', '.join(session.axes)}; it has no "
                                 f"{axis} axis")
            if key not in self.raw:
                video = video_file(self.root, name)
                request = VideoRequest(video=video, stride=stride, crop=crop)
                hooks = dataclasses.replace(self.hooks, watch=self._watch(name))
                self.raw[key] = session.positions(request, hooks)
            pts_ms, raw = self.raw[key]
            return pts_ms, raw if raw.ndim == 1 else raw[:, session.axes.index(axis)]

    def look(self, name: str, stride: int | None, crop: str,
             options: dict[str, Any] | None, axis: str = STROKE) -> dict[str, Any]:
        """Everything the viewer draws for a video on one axis. Without a stride and options:
        those of the script fsrun wrote beside it (so the drawing starts where that run ended),
        else the defaults."""
        video = video_file(self.root, name)
        began = time.perf_counter()
        script, written = read_script(default_output(video, axis))
        post = PostprocessOptions.from_options(written if options is None else options)
        stride = stride or int(written.get("stride") or DEFAULT_STRIDE)
        pts_ms, raw = self.positions(name, stride, crop, axis)
        info = probe(video)
        container = video.suffix.lower().lstrip(".")
        return {
            "video": name, "duration_ms": round(info.duration_s * 1000),
            "width": info.width, "height": info.height, "codec": info.codec,
            "playable": (container, info.codec) in PLAYABLE,
            "stride": stride, "options": post.as_dict(),
            "raw": {"at": [round(float(t), 1) for t in pts_ms],
                    "pos": [round(float(p) * 100, 2) for p in raw]},
            "actions": to_actions(pts_ms, raw, post),
            "script": script,
            "truth": read_script(truth_path(video, axis))[0],
            "axis": axis, "axes": list(self.axes()),
            "script_name": default_output(video, axis).name,
            "seconds": round(time.perf_counter() - began, 4),
        }

    def redo(self, name: str, stride: int, crop: str, options: dict[str, Any],
             axis: str = STROKE) -> dict[str, Any]:
        """Post-processing again from the positions in memory (a stride runs the head)."""
        began = time.perf_counter()
        pts_ms, raw = self.positions(name, stride, crop, axis)
        actions = to_actions(pts_ms, raw, PostprocessOptions.from_options(options))
        return {"actions": actions, "seconds": round(time.perf_counter() - began, 4)}

    def agreement(self, name: str, first: list[dict], second: list[dict]) -> dict[str, Any]:
        """Pearson r and lag between two tracks (compare mode)."""
        if len(first) < 3 or len(second) < 3:
            return {"r": None, "lag_ms": None, "detail": "fewer than 3 points"}
        a = (np.array([x["at"] for x in first], float), np.array([x["pos"] for x in first], float))
        b = (np.array([x["at"] for x in second], float),
             np.array([x["pos"] for x in second], float))
        result = compare(*a, *b)
        return {"r": round(result.pearson_r, 4), "lag_ms": result.lag_ms,
                "mae": round(result.mean_abs_error, 2), "points": result.points}

    def save(self, name: str, kind: str, actions: list[dict], replace: bool,
             axis: str = STROKE) -> dict[str, Any]:
        """Write the edited points as VIDEO.funscript (kind "script") or VIDEO.truth.funscript
        ("truth", the labels `fsexport train` learns from), VIDEO.roll.funscript and so on for
        another axis, atomically; an existing file only when the person confirmed (replace),
        and then only a funscript."""
        video = video_file(self.root, name)
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; valid: {', '.join(AXES)}")
        target = truth_path(video, axis) if kind == "truth" else default_output(video, axis)
        if len(actions) < 2:
            raise ValueError("a script needs at least two points")
        duration_ms = probe(video).duration_s * 1000.0
        late = max(float(a["at"]) for a in actions)
        if duration_ms > 0 and late > duration_ms + SAVE_MARGIN_MS:
            raise ValueError(f"a point at {late / 1000:.1f} s is past the end of the video "
                             f"({duration_ms / 1000:.1f} s)")
        clean = sorted(({"at": int(a["at"]), "pos": int(round(float(a["pos"])))}
                        for a in actions), key=lambda a: a["at"])
        unique = [a for i, a in enumerate(clean) if i == 0 or a["at"] != clean[i - 1]["at"]]
        previous = load_json_object(target) if target.exists() else None
        metadata = {"title": video.stem, "generator": {"name": EDITED_BY,
                                                       "version": fsrun.__version__},
                    "notes": ("labels made by a person in fsrun studio" if kind == "truth"
                              else "corrected by a person in fsrun studio"),
                    "edited": True, **({} if axis == STROKE else {"axis": axis})}
        # Provenance: what the script was made from before a person corrected it (the model
        # and options of fsrun's script, or the earlier edit's own record).
        made_from = _provenance(previous)
        if made_from:
            metadata["edited_from"] = made_from
        backup = None
        if replace and target.exists():
            backup = keep_backup(target)
        write_funscript(target, build_funscript(unique, metadata), force=replace,
                        protect=Protected([video]), truth=target.name.endswith(TRUTH_SUFFIX))
        return {"saved": target.name, "actions": len(unique),
                "backup": backup.name if backup else None}

    def frame_jpeg(self, name: str, at_ms: float) -> bytes:
        """The frame shown at at_ms, scaled to FRAME_WIDTH at most, as JPEG."""
        import av  # noqa: PLC0415

        video = video_file(self.root, name)
        with PyAvSource(video) as source:  # the sources layer: the script's clock, upright
            rgb = source.frame_at(at_ms / 1000.0)
        shown = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        width = min(FRAME_WIDTH, shown.width)
        height = max(2, int(round(shown.height * width / shown.width / 2)) * 2)
        image = shown.reformat(width=width - width % 2, height=height, format="yuvj420p")
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height, encoder.pix_fmt = image.width, image.height, "yuvj420p"
        encoder.time_base = Fraction(1, 1000)
        packets = encoder.encode(image) + encoder.encode(None)
        return b"".join(bytes(p) for p in packets)


def _provenance(previous: dict | None) -> dict | None:
    """The model, options and generator a script records, for the edit that replaces it."""
    meta = previous.get("metadata") if isinstance(previous, dict) else None
    if not isinstance(meta, dict):
        return None
    if isinstance(meta.get("edited_from"), dict):
        return meta["edited_from"]  # an edit of an edit: where it all came from
    kept = {k: meta[k] for k in ("generator", "model", "options") if k in meta}
    return kept or None


def keep_backup(target: Path) -> Path:
    """Copy target to TARGET.bak, or TARGET.bak.2, .bak.3 ... (the first free name: every
    replaced script is kept); the copy's path."""
    backup, number = target.with_name(target.name + ".bak"), 1
    while backup.exists():
        number += 1
        backup = target.with_name(f"{target.name}.bak.{number}")
    write_atomic(backup, target.read_bytes(), replace=False, what="keep a backup")
    return backup
