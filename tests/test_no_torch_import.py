"""fsrun must never pull in a deep-learning framework, not even through a dependency.

Every module under the fsrun package (found by walking it, so new modules are covered without
editing this test) is imported in a fresh interpreter; the test fails if torch, timm,
tensorflow or keras lands in sys.modules (or ray, which only `fsrun DIR --ray` imports), or if any module fails to import (GPU modules must
import without their libraries: their heavy imports happen lazily, on use).
"""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import fsrun

FORBIDDEN = ("torch", "timm", "tensorflow", "keras", "ray")

# Imports nothing but importlib and sys before the modules under test (json comes last), so
# the self-test below can use json as a stand-in for a forbidden library.
_PROBE = r"""
import importlib, sys
forbidden = {forbidden!r}
report = {{"failed": {{}}, "pulled": {{}}}}
for name in {modules!r}:
    before = set(sys.modules)
    try:
        importlib.import_module(name)
    except Exception as exc:
        report["failed"][name] = f"{{type(exc).__name__}}: {{exc}}"
        continue
    new = set(sys.modules) - before
    bad = sorted(m for m in new if m.split(".")[0] in forbidden)
    if bad:
        report["pulled"][name] = bad
report["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
import json
print(json.dumps(report))
"""


def runtime_modules() -> list[str]:
    names = ["fsrun"]
    for info in pkgutil.walk_packages(fsrun.__path__, prefix="fsrun."):
        names.append(info.name)
    return sorted(names)


def test_module_walk_finds_the_runtime() -> None:
    modules = runtime_modules()
    for expected in ("fsrun.cli", "fsrun.run.pipeline", "fsrun.sources.pyav_source",
                     "fsrun.backends.ort_cpu", "fsrun.run.stitching", "fsrun.files.embedding_cache"):
        assert expected in modules


def test_no_framework_in_any_runtime_module() -> None:
    modules = runtime_modules()
    code = _PROBE.format(forbidden=FORBIDDEN, modules=modules)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, f"modules that do not import: {report['failed']}"
    assert report["pulled"] == {}, f"modules importing a framework: {report['pulled']}"
    assert report["loaded"] == []


def test_probe_detects_a_forbidden_import() -> None:
    """The probe can fail: with json as the forbidden library, fsrun.files.funscript is caught."""
    code = _PROBE.format(forbidden=("json",), modules=["fsrun.files.funscript"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(report["pulled"]) == ["fsrun.files.funscript"]
    assert "json" in report["pulled"]["fsrun.files.funscript"]


# Runtime tests run on fsrun alone: their package fixture is a copy of the bundled demo package
# (tests/conftest.py), not one that `fsexport build` makes with torch.
RUNTIME_TEST_DIRS = ("runtime", "reliability")
NOT_FOR_RUNTIME_TESTS = (*FORBIDDEN, "fsexport")


def test_runtime_tests_import_no_framework_and_no_fsexport() -> None:
    import ast  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    tests = Path(__file__).resolve().parent
    offenders = []
    for folder in RUNTIME_TEST_DIRS:
        for path in sorted((tests / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(text)):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(tests)}: {n}" for n in names
                              if n.split(".")[0] in NOT_FOR_RUNTIME_TESTS]
            if "built_tiny_package" in text:
                offenders.append(f"{path.relative_to(tests)}: built_tiny_package")
    assert not offenders, offenders
