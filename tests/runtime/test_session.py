"""The run plan and the model session: one load and one backend start for many videos."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fsrun.backends import create_backend
from fsrun.errors import ModelError, UsageError
from fsrun.run.pipeline import RunHooks, SessionSpec, VideoRequest, process_video
from fsrun.run.plan import RunPlan, first_that_starts, make_plan, start_backends
from fsrun.model.package import load_package
from fsrun.run.postprocess import PostprocessOptions
from fsrun.run.session import ModelSession

from .recording import RecordingFactory
from .videos import write_cfr

RAW = PostprocessOptions(raw=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    return [write_cfr(root / f"clip{i}.mp4", 30, 45 + 15 * i) for i in range(3)]


def test_one_session_starts_its_backends_once(clips: list[Path], demo_package: Path,
                                              tmp_path: Path) -> None:
    counter = RecordingFactory()
    spec = SessionSpec(model=demo_package, backend="cpu", use_cache=False)
    with ModelSession.open(spec, RunHooks(backend_factory=counter)) as session:
        assert sorted(counter.started) == ["encoder.onnx", "head.onnx"]
        results = [session.process(VideoRequest(
            video=clip, output=tmp_path / f"{clip.stem}.funscript", postprocess=RAW))
            for clip in clips]
    assert len(counter.started) == 2
    assert [r.output.exists() for r in results] == [True, True, True]
    # The same scripts as one-shot runs, each with its own session.
    for clip, result in zip(clips, results):
        alone = process_video(spec, VideoRequest(
            video=clip, output=tmp_path / f"{clip.stem}.alone.funscript", postprocess=RAW))
        np.testing.assert_allclose(result.positions, alone.positions, atol=1e-6)
        assert result.report["plan"] == alone.report["plan"]
    assert results[0].report["plan"]["backend"] == "cpu"
    assert results[1].report["load"] < results[0].report["load"]


def test_a_session_opens_from_its_spec_alone(clips: list[Path], demo_package: Path,
                                             tmp_path: Path) -> None:
    """No video: the session knows its model and how it runs; videos come one by one."""
    with ModelSession.open(SessionSpec(model=demo_package, backend="cpu",
                                       use_cache=False)) as session:
        assert session.plan.model_name == "demo.fsmodel"
        result = session.process(VideoRequest(video=clips[0],
                                               output=tmp_path / "x.funscript"))
        assert result.actions > 0
    with pytest.raises(UsageError, match="closed"):
        session.process(VideoRequest(video=clips[0], output=tmp_path / "y.funscript"))


def test_no_dataclass_of_the_runtime_is_a_bag() -> None:
    """The run's options live in three small types; no dataclass has more than 14 fields."""
    import dataclasses as dc
    import importlib
    import pkgutil

    import fsrun

    widest = {}
    for module in pkgutil.walk_packages(fsrun.__path__, "fsrun."):
        if any(part in module.name for part in (".studio", ".scale", ".gpu", "nvdec",
                                                "trt_native", "ort_tensorrt", "ort_cuda")):
            continue  # optional libraries; their dataclasses are checked by reading below
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if dc.is_dataclass(value) and isinstance(value, type) \
                    and value.__module__ == module.name:
                widest[f"{module.name}.{value.__name__}"] = len(dc.fields(value))
    assert max(widest.values()) <= 14, sorted(widest.items(), key=lambda kv: -kv[1])[:3]
    # the rest, by reading: a dataclass's fields are its annotated class-level names
    import ast
    from pathlib import Path as _Path

    for path in _Path(fsrun.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                fields = [s for s in node.body if isinstance(s, ast.AnnAssign)
                          and "ClassVar" not in ast.unparse(s.annotation)]
                assert len(fields) <= 14, (path.name, node.name, len(fields))


def test_plan_resolves_every_auto(demo_package: Path) -> None:
    plan = make_plan(SessionSpec(model=demo_package, backend="cpu"))
    assert (plan.backend, plan.precision, plan.resize, plan.decoder) == ("cpu", "fp32",
                                                                         "source", "pyav")
    assert plan.to_dict()["requested"]["resize"] == "auto"
    graph = make_plan(SessionSpec(model=demo_package, backend="cpu", resize="graph"))
    assert graph.resize == "graph" and graph.decoder == "pyav"
    with pytest.raises(UsageError, match="GPU backend"):
        make_plan(SessionSpec(model=demo_package, backend="cpu", decoder="nvdec"))
    with pytest.raises(UsageError, match="needs the pyav decoder"):
        make_plan(SessionSpec(model=demo_package, resize="source", decoder="nvdec"))


def test_auto_falls_back_to_the_next_backend(demo_package: Path) -> None:
    package = load_package(demo_package)
    plan = make_plan(SessionSpec(model=demo_package, backend="cpu"), package)
    plan = dataclasses.replace(plan, backend="cuda", precision="fp32", resize="graph",
                               decoder="auto", candidates=("cpu",),
                               requested=dataclasses.replace(plan.requested, backend="auto"))

    def factory(name: str, onnx_path: Path, options: Any) -> Any:
        if name == "cuda":
            raise ModelError("no CUDA driver")
        return create_backend(name, onnx_path, options)

    started, held = start_backends(plan, package, ("head",), factory)
    try:
        assert isinstance(held, RunPlan) and held.backend == "cpu"
        assert (held.precision, held.resize, held.decoder) == ("fp32", "source", "pyav")
        assert held.fallbacks == ("cuda: no CUDA driver",) and held.candidates == ()
    finally:
        started["head"].close()
    with pytest.raises(ModelError, match="no CUDA driver"):  # asked for by name: no fallback
        start_backends(dataclasses.replace(plan, candidates=(), requested=dataclasses.replace(
            plan.requested, backend="cuda")), package, ("head",), factory)


def test_first_that_starts_lists_every_failure() -> None:
    def start(name: str) -> str:
        raise ModelError(f"{name} broke")

    with pytest.raises(ModelError, match="no backend could start: a: a broke; b: b broke"):
        first_that_starts(("a", "b"), start)
    assert first_that_starts(("a", "b"), lambda n: n.upper()) == ("A", "a", ())


def test_explain_prints_the_plan_and_runs_nothing(clips: list[Path], demo_package: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    from fsrun.cli import main  # noqa: PLC0415

    assert main([str(clips[0]), "--model", str(demo_package), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "backend:   cpu (asked: auto)" in out and "resize:    source (asked: auto)" in out
    assert f"{clips[0].name}: decoder pyav" in out
    assert not clips[0].with_suffix(".funscript").exists()
    assert main([str(clips[0]), "--model", str(demo_package), "--explain",
                 "--backend", "cpu", "--decoder", "nvdec"]) == 2


def test_folder_mode_starts_the_backends_once(clips: list[Path], demo_package: Path,
                                              tmp_path: Path) -> None:
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    from fsrun.folder import process_folder  # noqa: PLC0415

    folder = tmp_path / "library"
    folder.mkdir()
    for clip in clips:
        shutil.copy(clip, folder / clip.name)
    counter = RecordingFactory()
    summary = process_folder(folder, SessionSpec(model=demo_package, backend="cpu",
                                                 use_cache=False),
                             VideoRequest(video=folder, report=tmp_path / "folder.json"),
                             RunHooks(backend_factory=counter), ("mp4",))
    assert summary.count("ok") == len(clips)
    assert sorted(counter.started) == ["encoder.onnx", "head.onnx"]
    report = json.loads((tmp_path / "folder.json").read_text())
    assert report["plan"]["backend"] == "cpu" and report["plan"]["model_name"] == "demo.fsmodel"
    loads = [f["report"]["load"] for f in report["files"]]
    assert all(f["report"]["session_startup"] == report["files"][0]["report"]["session_startup"]
               for f in report["files"])
    assert max(loads[1:]) < loads[0]
