"""What the studio keeps between starts, in FOLDER/.fsrun-studio/ (a hidden folder: `fsrun
FOLDER` and the library skip it): the queue, each video's settings (its crop), and an index of
the videos' headers so that a library of a thousand videos lists at once. Each file is one JSON
document written atomically; a damaged one is set aside and started afresh, never fatal."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fsrun.files.atomic import remove_quietly, write_atomic
from fsrun.errors import OutputError

STATE_DIR = ".fsrun-studio"
ADDRESS = "address.json"  # the last token and port (owner-only permissions)


class JsonFile:
    """One JSON object on disk, read once, written whole (thread-safe in one process)."""

    def __init__(self, path: Path, default: dict[str, Any]):
        self.path = path
        self.lock = threading.RLock()
        self.data = self._read(default)

    def _read(self, default: dict[str, Any]) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        except FileNotFoundError:
            return json.loads(json.dumps(default))
        except (OSError, ValueError):
            pass
        broken = self.path.with_name(self.path.name + ".damaged")
        try:  # keep what was there for a person to look at, then start afresh
            self.path.replace(broken)
        except OSError:
            remove_quietly(self.path)
        return json.loads(json.dumps(default))

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_atomic(self.path, json.dumps(self.data, indent=1) + "\n", fsync=False)
            except OutputError:
                pass  # a full disk costs the studio its memory, not the page


class StudioState:
    """The files of one studio folder."""

    def __init__(self, root: Path):
        self.folder = Path(root) / STATE_DIR
        self.queue = JsonFile(self.folder / "queue.json", {"jobs": []})
        self.videos = JsonFile(self.folder / "videos.json", {"videos": {}})
        self.index = JsonFile(self.folder / "index.json", {"headers": {}})

    def address(self) -> tuple[str | None, int]:
        """(token, port) the studio had last time in this folder: a restart keeps the open
        tab working when the port is still free. (None, 0) when there was none."""
        try:
            data = json.loads((self.folder / ADDRESS).read_text(encoding="utf-8"))
            return str(data["token"]), int(data["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, 0

    def remember_address(self, token: str, port: int) -> None:
        """Keep (token, port) for the next start, readable by the owner only (it opens the
        studio)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            write_atomic(self.folder / ADDRESS, json.dumps({"token": token, "port": port}),
                         mode=0o600, fsync=False)
        except OutputError:
            pass  # a full disk: the next start gets a new address, nothing worse

    def settings(self, video: str) -> dict[str, Any]:
        """A video's settings (crop), {} when it has none."""
        with self.videos.lock:
            return dict(self.videos.data["videos"].get(video, {}))

    def set_settings(self, video: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.videos.lock:
            current = {**self.videos.data["videos"].get(video, {}), **changes}
            self.videos.data["videos"][video] = current
            self.videos.save()
            return dict(current)
