"""Whether an existing funscript was made "the same way" as this run would make it.

A library run is idempotent: a video whose funscript was written by fsrun with the same model
and the same options is skipped; one written by fsrun with another model or other options is
made again (and replaced atomically); any other file at that path is left alone.

"Same" compares the funscript's own metadata (written by pipeline._metadata) with this run:
- `metadata.model.sha256`: the package's model hash (the ONNX graphs, not the file name);
- `metadata.options`: stride, crop, start, end and every post-processing option (raw,
  min_amplitude, rdp_epsilon, stretch_percentile, invert, offset_ms);
- `metadata.options.precision` and `.resize` only when this run asks for one explicitly: under
  "auto" a GPU worker and a CPU worker resolve them differently, and either result is accepted.
Not compared: the fsrun version, the backend and decoder, batch sizes and threads (they change
speed, not the script beyond float noise).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsrun.files.funscript import fsrun_metadata
from fsrun.files.outputs import load_json_object

# SessionSpec fields that are "auto" unless asked for; compared only when not auto.
RESOLVED_OPTIONS: tuple[str, ...] = ("precision", "resize")


@dataclass(frozen=True)
class Verdict:
    same: bool  # made by fsrun with this model and these options: skip it
    by_fsrun: bool  # made by fsrun at all (so fsrun may replace it)
    why: str  # what differs, or why it is not fsrun's


def run_signature(spec: Any, request: Any, model_hash: str) -> dict[str, Any]:
    """What a funscript made by this run records about its model and options (JSON-normal):
    spec a SessionSpec, request the folder's VideoRequest."""
    options: dict[str, Any] = {"stride": request.stride, "crop": request.crop,
                               "start": request.start, "end": request.end,
                               **request.postprocess.as_dict()}
    for name in RESOLVED_OPTIONS:
        if getattr(spec, name) != "auto":
            options[name] = getattr(spec, name)
    return json.loads(json.dumps({"sha256": model_hash, "options": options}))


def compare(path: Path, signature: dict[str, Any]) -> Verdict:
    """The verdict for the funscript at path against run_signature()."""
    meta = fsrun_metadata(load_json_object(Path(path)))
    if meta is None:
        return Verdict(False, False, "not written by fsrun")
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    if model.get("sha256") != signature["sha256"]:
        return Verdict(False, True, f"another model ({model.get('name', '?')})")
    written = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    differ = [f"{key} {written.get(key)!r} -> {value!r}"
              for key, value in signature["options"].items() if written.get(key) != value]
    if differ:
        return Verdict(False, True, "other options: " + ", ".join(differ))
    return Verdict(True, True, "same model and options")
