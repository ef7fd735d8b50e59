"""The backend table with the CPU backend, and the progress line."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from fsrun.run import plan
from fsrun.backends import BACKENDS, BackendOptions, check_backend, create_backend, is_backend_available
from fsrun.errors import MissingDependencyError, ModelError, UsageError
from fsrun.model.package import load_package
from fsrun.progress import Progress


def test_cpu_backend_runs_encoder_and_head(demo_package: Path) -> None:
    package = load_package(demo_package)
    with create_backend("cpu", package.graph("encoder"), BackendOptions(threads=1)) as encoder:
        assert encoder.inputs[0].dtype == "uint8" and not encoder.accepts_device_input
        frames = np.random.default_rng(0).integers(0, 255, (3, 40, 50, 3), dtype=np.uint8)
        embeddings = encoder.run(frames)
    assert embeddings.shape == (3, package.meta.embedding_dim) and embeddings.dtype == np.float32
    with create_backend("cpu", package.graph("head")) as head:
        window = package.meta.window
        positions = head.run(np.stack([np.repeat(embeddings[:1], window, 0)] * 2))
    axes = len(package.meta.axis_names)  # [B, window] for the stroke alone, else [B, window, C]
    assert positions.shape == (2, window) + ((axes,) if axes > 1 else ())


def test_table_names_and_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(BACKENDS) == {"cpu", "cuda", "tensorrt", "trt-native"}
    assert is_backend_available("cpu")
    for name in ("gpu", "auto"):  # "auto" is the run plan's to resolve, never a backend's
        with pytest.raises(UsageError):
            check_backend(name)
    # auto: the available backends in AUTO_ORDER, the fastest first; the CPU when none is.
    available = {"cuda", "cpu"}
    monkeypatch.setattr(plan, "is_backend_available", lambda name: name in available)
    assert plan.backend_candidates("auto") == ("cuda", "cpu")
    available.clear()
    assert plan.backend_candidates("auto") == ("cpu",)
    assert plan.backend_candidates("cpu") == ("cpu",)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        create_backend("cpu", bad)


@pytest.mark.parametrize("name, extra", [("cuda", "fsrun[gpu]"), ("trt-native", "fsrun[tensorrt]")])
def test_missing_gpu_library_names_the_extra(name: str, extra: str, demo_package: Path) -> None:
    if is_backend_available(name):
        pytest.skip(f"{name} is installed here")
    with pytest.raises(MissingDependencyError) as info:
        create_backend(name, demo_package / "encoder.onnx")
    assert extra in str(info.value)


def test_progress_line_and_terminal_only() -> None:
    stream = io.StringIO()
    bar = Progress(300, enabled=None, stream=stream)
    assert not bar.enabled  # StringIO is not a terminal
    bar.update(150)
    bar.close()
    assert stream.getvalue() == ""
    bar = Progress(300, enabled=True, stream=stream)
    bar._start -= 10.0  # as if 10 s had passed
    bar.update(150)
    line = bar.line()
    assert "150/300 frames" in line and "15.0 frames/s" in line and "ETA 0:10" in line
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_progress_rate_and_eta_count_only_the_frames_still_to_do() -> None:
    """A resumed run: 270 of 300 frames come from the cache at once; the rate and the ETA are
    those of the 30 frames decoded and encoded now."""
    now = [100.0]
    bar = Progress(300, enabled=False, done_before=270, clock=lambda: now[0])
    assert bar.count == 270
    now[0] += 2.0
    bar.update(10)
    line = bar.line()
    assert "280/300 frames" in line and "5.0 frames/s" in line and "ETA 0:04" in line


def test_progress_off_a_terminal_prints_a_plain_line_every_ten_seconds() -> None:
    """A log file, a service or a notebook gets a line now and then, never a redrawn bar."""
    stream, now = io.StringIO(), [0.0]
    bar = Progress(3000, enabled=None, stream=stream, clock=lambda: now[0])
    assert not bar.enabled and bar.lines
    for _ in range(25):  # 25 s at 100 frames/s
        now[0] += 1.0
        bar.update(100)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["fsrun: 1000/3000 frames  100.0 frames/s  ETA 0:20",
                     "fsrun: 2000/3000 frames  100.0 frames/s  ETA 0:10"]
    quiet = io.StringIO()
    silent = Progress(3000, enabled=False, stream=quiet, clock=lambda: now[0])
    now[0] += 60.0
    silent.update(3000)
    assert quiet.getvalue() == ""
