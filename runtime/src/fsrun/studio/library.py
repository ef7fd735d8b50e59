"""The library: every video under the folder, with what it has beside it.

A video's state: no script; a script fsrun wrote (its model and options, from the script's
metadata); a creator's own script; and, independently, a truth file (labels). Its duration
comes from the container header, read once and kept in the studio's index with the file's size
and modification time, so a library of a thousand videos answers at once; videos not indexed
yet are read by a background thread, which tells the pages to list again when it is done.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from fsrun.axes import AXES, STROKE
from fsrun.folder import find_videos
from fsrun.files.funscript import default_output, fsrun_metadata, truth_path
from fsrun.files.outputs import load_json_object
from fsrun.studio.security import relative
from fsrun.studio.state import StudioState


def script_state(script: Path) -> dict[str, Any]:
    """What the funscript beside a video is: none, fsrun's (model, options) or a creator's."""
    if not script.is_file():
        return {"kind": "none"}
    meta = fsrun_metadata(load_json_object(script))
    if meta is None:
        return {"kind": "creator"}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    return {"kind": "fsrun", "model": model.get("name"), "options": meta.get("options", {})}


def axis_states(video: Path) -> dict[str, Any]:
    """The other axes a video has files for (VIDEO.roll.funscript, VIDEO.roll.truth.funscript):
    axis -> {"script": its state, "truth": bool}; the stroke is the row's own script."""
    states = {}
    for axis in AXES:
        if axis == STROKE:
            continue
        script, truth = default_output(video, axis), truth_path(video, axis)
        if script.is_file() or truth.is_file():
            states[axis] = {"script": script_state(script), "truth": truth.is_file()}
    return states


class Library:
    """The folder's videos; headers read in the background and kept in the index."""

    def __init__(self, root: Path, state: StudioState,
                 publish: Callable[[dict], None] = lambda event: None):
        self.root = Path(root)
        self.state = state
        self.publish = publish
        self._probing = threading.Lock()

    def _key(self, video: Path) -> str:
        stat = video.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def header(self, video: Path) -> dict[str, Any] | None:
        """The indexed header of a video (duration, size), or None when not read yet."""
        with self.state.index.lock:
            entry = self.state.index.data["headers"].get(relative(self.root, video))
        return entry if entry is not None and entry.get("key") == self._key(video) else None

    def listing(self) -> list[dict[str, Any]]:
        """A row per video; an entry that cannot be opened (a link out of the folder or to
        nothing, an unreadable file) is a row saying why, never a failed page. A link to
        another video of the folder is that video, listed once."""
        rows, missing = [], []
        found = find_videos(self.root)
        real = {p.resolve() for p in found if not p.is_symlink()}
        for video in found:
            problem = self._problem(video, real)
            if problem == "duplicate":
                continue
            if problem is not None:
                rows.append({"video": video.relative_to(self.root).as_posix(), "problem": problem,
                             "bytes": None, "duration_s": None, "script": {"kind": "none"},
                             "truth": False, "axes": {}, "settings": {}})
                continue
            name = relative(self.root, video)
            header = self.header(video)
            if header is None:
                missing.append(video)
            rows.append({"video": name, "bytes": video.stat().st_size,
                         "duration_s": header.get("duration_s") if header else None,
                         "script": script_state(default_output(video)),
                         "truth": truth_path(video).is_file(),
                         "axes": axis_states(video),
                         "settings": self.state.settings(name)})
        if missing:
            threading.Thread(target=self.read_headers, args=(missing,), daemon=True,
                             name="fsrun-studio-index").start()
        return rows

    def _problem(self, video: Path, real: set[Path]) -> str | None:
        """Why a found entry cannot be listed as a video ("duplicate": a link to a video
        listed under its own name), or None."""
        try:
            target = video.resolve()
            if video.is_symlink():
                if not target.exists():
                    return "a link to a file that is not there"
                if not target.is_relative_to(self.root.resolve()):
                    return "a link out of the folder: the studio reads only files inside it"
                if target in real:
                    return "duplicate"
            if not target.is_file():
                return "not a regular file"
            with open(target, "rb"):
                pass
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        return None

    def read_headers(self, videos: list[Path]) -> int:
        """Read and index the headers of videos (one thread at a time); returns how many."""
        from fsrun.errors import FsError  # noqa: PLC0415
        from fsrun.sources import probe  # noqa: PLC0415

        if not self._probing.acquire(blocking=False):
            return 0
        try:
            done = 0
            for video in videos:
                try:
                    info = probe(video)
                    entry = {"key": self._key(video), "duration_s": round(info.duration_s, 3),
                             "width": info.width, "height": info.height, "fps": info.fps,
                             "codec": info.codec}
                except (FsError, OSError) as exc:
                    entry = {"key": self._key(video), "duration_s": None, "error": str(exc)}
                with self.state.index.lock:
                    self.state.index.data["headers"][relative(self.root, video)] = entry
                done += 1
            self.state.index.save()
            if done:
                self.publish({"type": "library"})
            return done
        finally:
            self._probing.release()
