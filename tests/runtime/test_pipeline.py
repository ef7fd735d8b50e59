"""process_video end to end on the CPU with the tiny package and PyAV-made videos."""
from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fsrun import config as user_config
from fsrun.backends import create_backend
from fsrun.errors import Interrupted, ModelError, OutputError
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package
from fsrun.run.pipeline import process_video, resolve_model
from tests.split_options import split
from fsrun.run.postprocess import PostprocessOptions
from fsrun.run.sampling import sample_timestamps

from .videos import duration_s, read_timestamps_s, write_cfr, write_vfr

RAW = PostprocessOptions(raw=True)
FPS_CASES = {"24": 24, "25": 25, "29.97": Fraction(30000, 1001), "30": 30, "60": 60}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    made = {name: write_cfr(root / f"v{name}.mp4", fps, int(float(fps) * 3))
            for name, fps in FPS_CASES.items()}
    # Variable frame rate: 60 fps, a 24 fps stretch, a gap of dropped frames, then 30 fps.
    vfr = [round(i * 1000 / 60) for i in range(40)]
    vfr += [700 + round(i * 1000 / 24) for i in range(30)]
    vfr += [2300 + round(i * 1000 / 30) for i in range(30)]
    made["vfr"] = write_vfr(root / "vfr.mkv", vfr)
    return made


def expected_times_ms(video: Path, fps: float = 30.0) -> list[int]:
    """Sampled frames' timestamps as stored in the file (read independently with PyAV)."""
    return [int(round(t * 1000)) for t in sample_timestamps(read_timestamps_s(video), fps)]


class CountingFactory:
    """Builds real backends and counts what goes through the encoder."""

    def __init__(self, fail_on_call: int | None = None):
        self.encoder_calls = 0
        self.encoder_frames = 0
        self.fail_on_call = fail_on_call

    def __call__(self, name: str, onnx_path: Path, options: Any) -> Any:
        backend = create_backend(name, onnx_path, options)
        if not Path(onnx_path).name.startswith("encoder"):
            return backend
        factory = self
        real_run = backend.run

        def run(batch: Any) -> np.ndarray:
            factory.encoder_calls += 1
            if factory.fail_on_call == factory.encoder_calls:
                raise KeyboardInterrupt
            factory.encoder_frames += len(batch)
            return real_run(batch)

        backend.run = run
        return backend


def run(video: Path, package: Path, tmp_path: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("output", tmp_path / f"{video.stem}.funscript")
    kwargs.setdefault("backend", "cpu")
    kwargs.setdefault("decoder", "pyav")
    kwargs.setdefault("force", True)
    return process_video(*split(video=video, model=package, **kwargs))


@pytest.mark.parametrize("case", [*FPS_CASES, "vfr"])
def test_action_times_are_sampled_frame_timestamps(case: str, videos: dict[str, Path],
                                                   demo_package: Path, tmp_path: Path) -> None:
    video = videos[case]
    result = run(video, demo_package, tmp_path, postprocess=RAW, use_cache=False)
    doc = read_funscript(result.output)
    times = [a["at"] for a in doc["actions"]]
    expected = expected_times_ms(video)
    assert times == expected
    stored = read_timestamps_s(video)
    if case == "60":
        assert len(times) == len(stored) // 2
    elif case != "vfr":
        assert len(times) == len(stored)  # slower than the model: every frame, none twice
    assert 0 <= times[0] and times[-1] <= duration_s(video) * 1000
    assert all(0 <= a["pos"] <= 100 for a in doc["actions"])
    assert result.report["frames"] == len(expected)


@pytest.mark.parametrize("stride", [60, 30, 1])
def test_encoder_runs_once_per_sampled_frame(stride: int, videos: dict[str, Path],
                                             demo_package: Path, tmp_path: Path) -> None:
    video = videos["60"]
    counter = CountingFactory()
    result = run(video, demo_package, tmp_path, stride=stride, batch=16, use_cache=False,
                 backend_factory=counter)
    sampled = len(expected_times_ms(video))
    assert counter.encoder_frames == sampled == result.report["frames_encoded"]
    assert counter.encoder_calls == math.ceil(sampled / 16) == result.report["encoder_calls"]
    assert sampled == 90
    windows = {60: 2, 30: 2, 1: 31}[stride]  # starts 0 and 30 (end-aligned); 0..30 for stride 1
    assert result.report["windows"] == windows


def test_rerun_with_another_stride_uses_the_cache(videos: dict[str, Path], demo_package: Path,
                                                  tmp_path: Path) -> None:
    video = videos["30"]
    first = run(video, demo_package, tmp_path, stride=30, postprocess=RAW)
    assert first.report["frames_decoded"] > 0 and not first.report["cache_hit"]
    counter = CountingFactory()
    second = run(video, demo_package, tmp_path, stride=10, backend_factory=counter,
                 postprocess=RAW)
    assert second.report["cache_hit"] and second.report["decoder"] == "cache"
    assert second.report["frames_decoded"] == 0 and second.report["frames_encoded"] == 0
    assert counter.encoder_calls == 0
    assert second.report["windows"] > first.report["windows"]
    again = run(video, demo_package, tmp_path, stride=30, postprocess=RAW)
    assert again.report["frames_encoded"] == 0
    np.testing.assert_allclose(again.positions, first.positions, atol=1e-6)
    assert np.array_equal(again.pts_ms, first.pts_ms)


def test_interrupted_run_resumes_from_the_cache(videos: dict[str, Path], demo_package: Path,
                                               tmp_path: Path) -> None:
    video = videos["60"]
    reference = run(video, demo_package, tmp_path, use_cache=False, postprocess=RAW, batch=8,
                    output=tmp_path / "reference.funscript")
    with pytest.raises(Interrupted, match="16 frames cached"):
        run(video, demo_package, tmp_path, batch=8, backend_factory=CountingFactory(3),
            output=tmp_path / "resumed.funscript")
    assert not (tmp_path / "resumed.funscript").exists()
    resumed = run(video, demo_package, tmp_path, batch=8, postprocess=RAW,
                  output=tmp_path / "resumed.funscript")
    assert resumed.report["resumed_from"] == 16
    assert resumed.report["frames_encoded"] == reference.report["frames"] - 16
    assert np.array_equal(resumed.pts_ms, reference.pts_ms)
    np.testing.assert_allclose(resumed.positions, reference.positions, atol=1e-5)


def test_resumed_run_says_so(videos: dict[str, Path], demo_package: Path,
                             tmp_path: Path) -> None:
    video = videos["30"]
    run(video, demo_package, tmp_path, end=1.0, postprocess=RAW)
    messages: list[str] = []
    resumed = run(video, demo_package, tmp_path, postprocess=RAW, log=messages.append)
    assert resumed.report["resumed_from"] == 30
    assert "resuming after 30 frames cached by an earlier run" in messages, messages


def test_short_clip_is_padded_and_says_so(tmp_path: Path, demo_package: Path) -> None:
    video = write_cfr(tmp_path / "short.mp4", 30, 20)
    messages: list[str] = []
    result = run(video, demo_package, tmp_path, postprocess=RAW, log=messages.append)
    assert result.padded and result.report["padded"] and result.report["windows"] == 1
    doc = read_funscript(result.output)
    assert len(doc["actions"]) == 20
    assert doc["metadata"]["padded"] is True and "padded" in doc["metadata"]["notes"]
    assert any("padded" in m for m in messages)


def test_start_end_and_report(videos: dict[str, Path], demo_package: Path,
                              tmp_path: Path) -> None:
    video = videos["30"]
    report_path = tmp_path / "report.json"
    result = run(video, demo_package, tmp_path, start=1.0, end=2.5, postprocess=RAW,
                 report=report_path)
    times = [a["at"] for a in read_funscript(result.output)["actions"]]
    assert times[0] == 1000 and times[-1] < 2500 and len(times) == 45
    report = json.loads(report_path.read_text())
    for key in ("decode", "encode", "head", "stitch", "write", "wall"):
        assert isinstance(report[key], float) and report[key] >= 0
    assert report["backend"] == "cpu" and report["decoder"] == "pyav"
    assert report["frames"] == 45 and report["windows"] == 1
    # A run over the whole video later extends the same cache (same --start).
    longer = run(video, demo_package, tmp_path, start=1.0, postprocess=RAW)
    assert longer.report["resumed_from"] == 45
    assert longer.report["frames_encoded"] == 60 - 45  # 1.0 s .. 3.0 s is 60 frames


def test_metadata_names_model_and_options(videos: dict[str, Path], demo_package: Path,
                                          tmp_path: Path) -> None:
    result = run(videos["25"], demo_package, tmp_path, stride=20, use_cache=False)
    meta = read_funscript(result.output)["metadata"]
    assert meta["generator"]["name"] == "fsrun"
    assert meta["model"]["variant"] == load_package(demo_package).meta.variant
    assert meta["model"]["sha256"] == result.report["model_hash"]
    assert meta["options"]["stride"] == 20 and meta["options"]["raw"] is False
    assert meta["duration"] == pytest.approx(duration_s(videos["25"]), abs=0.01)


def test_existing_output_is_refused_before_any_work(videos: dict[str, Path], demo_package: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "taken.funscript"
    out.write_text("keep me")
    counter = CountingFactory()
    with pytest.raises(OutputError, match="--force"):
        run(videos["30"], demo_package, tmp_path, output=out, force=False,
            backend_factory=counter)
    assert out.read_text() == "keep me" and counter.encoder_calls == 0


def test_model_resolution_order(demo_package: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(user_config, "demo_model_dir", lambda: tmp_path / "no-demo")
    with pytest.raises(ModelError, match="no model"):
        resolve_model(None)
    user_config.set_default_model(demo_package)
    assert resolve_model(None) == (demo_package.resolve(), None)
    monkeypatch.setenv("FSRUN_MODEL", str(tmp_path / "env.fsmodel"))
    assert resolve_model(None) == (tmp_path / "env.fsmodel", None)
    with pytest.raises(ModelError, match="no such model"):
        resolve_model(tmp_path / "x")
    (tmp_path / "x").mkdir()
    assert resolve_model(tmp_path / "x")[0] == tmp_path / "x"
    demo = tmp_path / "demo.fsmodel"
    demo.mkdir()
    monkeypatch.delenv("FSRUN_MODEL")
    (Path(user_config.config_dir()) / "default_model").unlink()
    monkeypatch.setattr(user_config, "demo_model_dir", lambda: demo)
    path, notice = resolve_model(None)
    assert path == demo and "demo" in notice
