"""Result files written whole: a temp name first, then moved over the old one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fsrun.files.atomic import write_atomic


def atomic_write(path: Path, text: str) -> None:
    write_atomic(path, text)


def write_json_and_markdown(out: Path, stem: str, results: dict[str, Any],
                            markdown: str) -> tuple[Path, Path]:
    """OUT/STEM.json (the numbers) and OUT/STEM.md (the table a person reads)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    atomic_write(json_path, json.dumps(results, indent=1, default=str) + "\n")
    atomic_write(md_path, markdown)
    return json_path, md_path
