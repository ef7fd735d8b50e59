"""The documents a clone ships: links stay inside the repository and the design names what the
code does."""
from __future__ import annotations

import re
from pathlib import Path

from fsrun.errors import EXIT_CODES
from fsrun.run.pipeline import RESIZE_CHOICES
from fsrun.sources.pyav_source import HOST_BATCH_BYTES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _targets(text: str) -> list[str]:
    """Markdown link targets and `...md` paths written in backticks."""
    links = re.findall(r"\]\(([^)\s#]+)", text)
    quoted = re.findall(r"`([^`\s]+\.md)`", text)
    return [t for t in links + quoted if not re.match(r"[a-z]+://", t)]


def test_links_stay_inside_the_repository() -> None:
    for doc in DOCS:
        for target in _targets(doc.read_text(encoding="utf-8")):
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name} links outside: {target}"
            assert path.exists(), f"{doc.name} links to a missing file: {target}"
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_architecture_describes_the_current_code() -> None:
    """Both ways: every module the design names exists, every package of the runtime is in the
    design, and the values it quotes are the code's."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    runtime = ROOT / "runtime" / "src" / "fsrun"
    named = set(re.findall(r"`(?:fsrun/)?([a-z_]+(?:/[a-z_]+)*\.py)`", text))
    missing = [n for n in named if not (runtime / n).is_file()
               and not list(runtime.rglob(Path(n).name))]
    assert named and missing == [], missing
    packages = sorted(p.name for p in runtime.iterdir()
                      if p.is_dir() and (p / "__init__.py").is_file())
    assert [p for p in packages if f"{p}/" not in text] == []
    # and the other way for modules too: every module at the package root and in run/,
    # files/ and model/ is named in the drawing
    drawn = set(re.findall(r"\b([a-z_]+\.py)\b", text))
    for folder in (runtime, runtime / "run", runtime / "files", runtime / "model"):
        modules = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
        assert sorted(modules - drawn) == [], folder.name
    assert f"--resize {'|'.join(RESIZE_CHOICES)}" in text
    assert HOST_BATCH_BYTES == 12 << 20 and "12 MiB" in text
    assert "(exit-codes.md)" in text


def test_every_exit_code_is_documented() -> None:
    text = (ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    rows = {int(m) for m in re.findall(r"^\| (\d+) \|", text, flags=re.M)}
    assert rows == set(EXIT_CODES.values())
    assert "no videos" in text  # an empty folder is an input error
