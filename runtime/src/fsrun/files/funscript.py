"""OFS-compatible funscript files: build, validate, write atomically, read back.

The format players load: {"version": "1.0", "inverted": false, "range": 100,
"actions": [{"at": ms, "pos": 0-100}, ...], "metadata": {...}} with integer `at` and `pos`,
actions sorted by `at` and no `at` twice.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fsrun.axes import STROKE, axis_suffix
from fsrun.files.atomic import write_atomic
from fsrun.errors import InputError, OutputError
from fsrun.files.outputs import Protected, check_folder_writable, load_json_object

FUNSCRIPT_VERSION = "1.0"
SUFFIX = ".funscript"
# Known motion (from `fsrun synth`, or labels for training) lives beside the video under its own
# name, so it never collides with the VIDEO.funscript that fsrun writes.
TRUTH_SUFFIX = ".truth.funscript"


def default_output(video: Path | str, axis: str = STROKE) -> Path:
    """VIDEO.funscript next to the video (VIDEO.roll.funscript for the roll, and so on): the
    names players pick up on their own."""
    return Path(video).with_suffix(axis_suffix(axis) + SUFFIX)


def truth_path(video: Path | str, axis: str = STROKE) -> Path:
    """VIDEO.truth.funscript (VIDEO.roll.truth.funscript for the roll): the true positions of a
    video, kept apart from fsrun's output."""
    return Path(video).with_suffix(axis_suffix(axis) + TRUTH_SUFFIX)


def build_funscript(actions: list[dict[str, int]], metadata: dict[str, Any],
                    inverted: bool = False) -> dict[str, Any]:
    doc = {"version": FUNSCRIPT_VERSION, "inverted": bool(inverted), "range": 100,
           "actions": [{"at": a["at"], "pos": a["pos"]} for a in actions],
           "metadata": metadata}
    problems = validate_funscript(doc)
    if problems:
        raise ValueError("invalid funscript: " + "; ".join(problems))
    return doc


def validate_funscript(doc: Any) -> list[str]:
    """Problems that would make a player reject or misplay the script; empty when valid."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    problems = []
    if not isinstance(doc.get("version"), str):
        problems.append("version must be a string")
    if not isinstance(doc.get("inverted"), bool):
        problems.append("inverted must be true or false")
    if doc.get("range") != 100:
        problems.append("range must be 100")
    actions = doc.get("actions")
    if not isinstance(actions, list):
        return problems + ["actions must be a list"]
    last = None
    for i, action in enumerate(actions):
        if not isinstance(action, dict):
            problems.append(f"action {i} is not an object")
            continue
        at, pos = action.get("at"), action.get("pos")
        if not _is_int(at) or at < 0:
            problems.append(f"action {i}: at must be a non-negative integer, got {at!r}")
            continue
        if not _is_int(pos) or not 0 <= pos <= 100:
            problems.append(f"action {i}: pos must be an integer 0-100, got {pos!r}")
        if last is not None and at <= last:
            problems.append(f"action {i}: at {at} is not after {last} (sorted, unique)")
        last = at
    if "metadata" in doc and not isinstance(doc["metadata"], dict):
        problems.append("metadata must be an object")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


GENERATOR = "fsrun"  # metadata.generator.name of every script fsrun writes


def fsrun_metadata(doc: Any) -> dict[str, Any] | None:
    """The metadata of a funscript document fsrun wrote, else None (a creator's own script, a
    truth file, anything else). fsrun's scripts are predictions: never labels for training."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    generator = meta.get("generator") if isinstance(meta, dict) else None
    if isinstance(generator, dict) and generator.get("name") == GENERATOR:
        return meta
    return None


def written_by_fsrun(path: Path | str) -> bool:
    """Whether the file at path is a funscript fsrun wrote (unreadable files: no)."""
    return fsrun_metadata(load_json_object(Path(path))) is not None


def is_funscript(path: Path | str) -> bool:
    """Whether an existing file parses as a funscript (a JSON object with a list of actions),
    the only kind of file --force replaces."""
    doc = load_json_object(Path(path))
    return doc is not None and isinstance(doc.get("actions"), list)


def check_writable(path: Path | str, force: bool, protect: Protected | None = None,
                   truth: bool = False) -> None:
    """Fail early (before any work) unless the funscript can go to path.

    Never over a protected file (the input video, a video of the folder being processed) or,
    unless truth (known motion: the synthetic renderer, a person's labels), a truth file; an
    existing file only with force, and then only when it is a funscript.
    """
    path = Path(path)
    if protect is not None:
        protect.refuse(path)
    if path.name.endswith(TRUTH_SUFFIX) and not truth:
        raise OutputError(f"{path} is a truth file (known motion, for training); fsrun never "
                          "writes one: choose another --output")
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputError(f"{path} exists; use --force to overwrite it")
        if not is_funscript(path):
            raise OutputError(f"{path} exists and is not a funscript; --force only replaces "
                              "funscripts")
    check_folder_writable(path.parent, path.name)


def write_funscript(path: Path | str, doc: dict[str, Any], force: bool = False,
                    protect: Protected | None = None, truth: bool = False) -> Path:
    """Write atomically (atomic.py): a reader never sees a half-written file, and without force
    an existing script is never replaced, not even one that appeared meanwhile. truth: path
    may be a VIDEO.truth.funscript (only known motion is written there, never a prediction)."""
    path = Path(path)
    check_writable(path, force, protect, truth)
    text = json.dumps(doc, indent=None, separators=(",", ":")) + "\n"
    return write_atomic(path, text, replace=force)


def read_funscript(path: Path | str, strict: bool = True) -> dict[str, Any]:
    """Load a funscript; raises InputError naming the first problems. strict: valid as a player
    expects (validate_funscript); otherwise only a list of actions with numeric at and pos is
    required, as in scripts from other tools and labels for training."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable funscript ({exc})") from None
    problems = validate_funscript(doc) if strict else _action_problems(doc)
    if problems:
        raise InputError(f"{path}: invalid funscript: " + "; ".join(problems[:3]))
    return doc


def read_actions(path: Path | str, min_actions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(at_ms, pos) float arrays of a funscript, sorted by time (read leniently). Fewer than
    min_actions is an InputError: a track needs two points to be interpolated."""
    actions = read_funscript(path, strict=False)["actions"]
    at = np.array([float(a["at"]) for a in actions])
    pos = np.array([float(a["pos"]) for a in actions])
    if len(at) < min_actions:
        raise InputError(f"{path}: a funscript needs at least {min_actions} actions to compare")
    order = np.argsort(at, kind="stable")
    return at[order], pos[order]


def _action_problems(doc: Any) -> list[str]:
    """The problems a lenient read refuses: no list of actions, or an action without numbers."""
    if not isinstance(doc, dict) or not isinstance(doc.get("actions"), list):
        return ["actions must be a list"]
    for i, action in enumerate(doc["actions"]):
        values = [action.get(k) for k in ("at", "pos")] if isinstance(action, dict) else [None]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return [f"action {i}: at and pos must be numbers"]
    return []
