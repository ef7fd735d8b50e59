"""Output paths, checked before any work: what fsrun writes never replaces what it reads.

Every path fsrun writes (the funscript, the report, the embedding cache) is checked before the
first frame is decoded, so a run never fails after hours of work for a path it could have
refused at once. Inputs are recognised by file identity (device and inode), not by name: a
symlink, a hard link, `sub/../clip.mp4` or, on a case-insensitive filesystem, `CLIP.MP4` are the
same file as `clip.mp4`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from fsrun.files.atomic import os_reason, write_atomic
from fsrun.errors import OutputError

# An existing file at an output path is read to find out what it is; funscripts and reports are
# small (a three-hour raw script is about 7 MB), anything larger is neither.
MAX_JSON_BYTES = 64 << 20
# The field every report fsrun writes carries; --report replaces only a file that has it (never
# a funscript, a truth file, a package's meta.json or any other JSON).
REPORT_MARKER = "fsrun_report"
REPORT_FORMAT = 1


class Protected:
    """Files no output may replace: the input video, or every video of a folder being
    processed. `also` chains a wider set (the folder's) behind this one."""

    def __init__(self, paths: Iterable[Path | str] = (), role: str = "the input video",
                 also: Protected | None = None):
        self.also = also
        self._files: dict[tuple[int, int], tuple[Path, str]] = {}
        for path in paths:
            identity = _identity(path)
            if identity is not None:
                self._files.setdefault(identity, (Path(path), role))

    def find(self, path: Path | str) -> tuple[Path, str] | None:
        """(protected file, its role) when path reaches one of them, else None."""
        identity = _identity(path)
        if identity is None:
            return None
        found = self._files.get(identity)
        if found is None and self.also is not None:
            return self.also.find(path)
        return found

    def refuse(self, path: Path | str) -> None:
        """OutputError when writing to path would replace a protected file."""
        found = self.find(path)
        if found is not None:
            other, role = found
            named = "" if str(other) == str(path) else f" {other}"
            raise OutputError(f"{path} is {role}{named}; choose another path")


def _identity(path: Path | str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)  # follows symlinks: a link to the video is the video
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino


def load_json_object(path: Path) -> dict | None:
    """The JSON object in an existing file, or None when it holds anything else."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        doc = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# The longest name fsrun makes beside an output NAME is the claim's takeover file
# (.NAME.claim.takeover); the temporary file of an atomic write is .NAME.XXXXXXXX.tmp. A probe
# named .NAME.XXXXXXXX + this suffix is longer than both, so a name that passes the probe fits
# every file the run will make for it.
_PROBE_SUFFIX = ".claim.takeover"


def _write_problem(folder: Path, name: str | None = None) -> str | None:
    """Why no new file (named for `name`, when given) can be created in folder, or None."""
    if not folder.is_dir():
        return "not a folder"
    try:
        if name is None:
            with tempfile.TemporaryFile(dir=folder):
                pass
        else:
            fd, probe = tempfile.mkstemp(prefix=f".{name}.", suffix=_PROBE_SUFFIX, dir=folder)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return os_reason(exc)
    return None


def check_folder_writable(folder: Path, name: str | None = None) -> None:
    """OutputError unless a new file can be created in folder (found out now, not after hours
    of work). With name (an output's file name), the check uses a name longer than every file
    fsrun makes for that output (its temporary file, its claim), so a name the folder's
    filesystem cannot hold is refused now, naming the output, not after the work."""
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    problem = _write_problem(folder, name)
    if problem is not None and name is not None and _write_problem(folder) is None:
        raise OutputError(f"{folder / name}: the name is too long for its folder ({problem}); "
                          "choose a shorter name")
    if problem is not None:
        raise OutputError(f"{folder}: cannot write there ({problem})")


def nearest_existing(path: Path) -> Path:
    """path, or its closest ancestor that exists (where new folders would be made)."""
    path = Path(path)  # as given, so that messages name it the way the user did
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def is_report(path: Path | str) -> bool:
    """Whether an existing file is a report fsrun wrote (it carries REPORT_MARKER)."""
    doc = load_json_object(Path(path))
    return doc is not None and REPORT_MARKER in doc


def check_report_path(path: Path | str, funscript: Path | None, protect: Protected) -> None:
    """--report: not an input, not the funscript, not a file other than an earlier fsrun
    report, in a folder that exists or can be made and takes new files."""
    path = Path(path)
    protect.refuse(path)
    if funscript is not None and (os.path.realpath(path) == os.path.realpath(funscript)
                                  or _same_file(path, funscript)):
        raise OutputError(f"{path} is also the funscript output; choose another --report")
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    if (path.exists() or path.is_symlink()) and not is_report(path):
        raise OutputError(f"{path} exists and is not an fsrun report; choose another --report")
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder; choose another --report")
    check_folder_writable(folder, path.name if folder == path.parent else None)


def _same_file(a: Path, b: Path) -> bool:
    identity = _identity(a)
    return identity is not None and identity == _identity(b)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write a JSON report atomically (a half-written report never appears), marked as fsrun's
    so that a later --report may replace it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write the report there "
                          f"({os_reason(exc)})") from None
    document = {REPORT_MARKER: REPORT_FORMAT, **report}
    write_atomic(path, json.dumps(document, indent=2) + "\n", what="write the report")
