"""fsrun runs imported packages end to end: a generated clip in, a funscript out, whose raw
positions are the package's own composite graph on the clip's frames."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
import pytest

from fsexport.importers.config import ImportConfig
from fsexport.importers.doors import import_model
from fsrun import cli
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package
from tests.runtime.videos import read_timestamps_s, write_cfr

FIXTURES = Path(__file__).parent / "keras_fixtures"


def _frames(video: Path) -> np.ndarray:
    with av.open(str(video)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("source", ["kecam_s_like.h5", "kecam_s_like.onnx"])
def test_fsrun_writes_the_composites_positions(source: str, tmp_path: Path) -> None:
    config = ImportConfig(source=FIXTURES / source, output=tmp_path, fp16=False, set_default=False)
    package = import_model(config, log=lambda _: None).path
    meta = load_package(package).meta
    # Exactly one window of frames at the model's fps: fsrun's stitched positions are then that
    # window's prediction, which the composite graph computes from the same decoded frames.
    video = write_cfr(tmp_path / "clip.mp4", int(meta.fps), meta.window, width=96, height=72)
    out = tmp_path / "clip.funscript"
    assert cli.main([str(video), "--model", str(package), "--backend", "cpu", "--decoder", "pyav",
                     "--resize", "graph", "--raw", "--no-cache", "-q", "-o", str(out)]) == 0
    actions = read_funscript(out)["actions"]
    assert [a["at"] for a in actions] == [round(t * 1000) for t in read_timestamps_s(video)]
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    composite = session.run(None, {"frames": _frames(video)[None]})[0][0]
    expected = np.round(np.clip(composite * 100.0, 0.0, 100.0))
    got = np.array([a["pos"] for a in actions])
    assert np.abs(got - expected).max() <= 1, (got, expected)
    assert len(set(got.tolist())) > 3  # the clip moves, so do the positions
