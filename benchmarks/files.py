"""Result files written whole: a temp name first, then moved over the old one."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json_and_markdown(out: Path, stem: str, results: dict[str, Any],
                            markdown: str) -> tuple[Path, Path]:
    """OUT/STEM.json (the numbers) and OUT/STEM.md (the table a person reads)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    atomic_write(json_path, json.dumps(results, indent=1, default=str) + "\n")
    atomic_write(md_path, markdown)
    return json_path, md_path
