"""The PyAV source: container timestamps, only kept frames converted, crop before batching."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fsrun.errors import InputError, UsageError
from fsrun.run.sampling import TimestampSampler
from fsrun.run.plan import choose_decoder
from fsrun.sources import open_source, probe
from fsrun.sources.pyav_source import PyAvSource

from .videos import read_timestamps_s, write_cfr, write_vfr


class TakeAll:
    def accept(self, pts_s: float) -> bool:
        return True


@pytest.fixture(scope="module")
def clip_2997(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cfr(tmp_path_factory.mktemp("v") / "c.mp4", Fraction(30000, 1001), 40)


def test_timestamps_come_from_the_container(clip_2997: Path) -> None:
    with PyAvSource(clip_2997) as source:
        batches = list(source.batches(TakeAll(), 16))
    assert [len(b) for b in batches] == [16, 16, 8]
    pts = np.concatenate([b.pts_ms for b in batches])
    assert pts == pytest.approx(np.array(read_timestamps_s(clip_2997)) * 1000)
    assert pts[1] == pytest.approx(1001 / 30)  # 33.367 ms, not 1000/29.97 rounded
    assert batches[0].frames.dtype == np.uint8 and batches[0].frames.shape[1:] == (48, 64, 3)


def test_only_sampled_frames_are_converted(tmp_path: Path) -> None:
    path = write_cfr(tmp_path / "c60.mp4", 60, 60)
    with PyAvSource(path) as source:
        frames = sum(len(b) for b in source.batches(TimestampSampler(30.0), 8))
        assert source.frames_decoded == 60
        assert source.frames_converted == frames == 30


def test_variable_frame_rate_timestamps(tmp_path: Path) -> None:
    times = [0, 16, 33, 40, 100, 117, 150, 183, 250, 300]
    path = write_vfr(tmp_path / "vfr.mkv", times)
    with PyAvSource(path) as source:
        pts = np.concatenate([b.pts_ms for b in source.batches(TakeAll(), 4)])
    assert pts.tolist() == [float(t) for t in times]


def test_crop_happens_in_the_source(clip_2997: Path) -> None:
    with PyAvSource(clip_2997) as full_source:
        full = next(full_source.batches(TakeAll(), 4)).frames
    source = open_source(clip_2997, decoder="pyav", crop="sbs-left")
    with source:
        left = next(source.batches(TakeAll(), 4)).frames
    assert left.shape == (4, 48, 32, 3)
    assert np.array_equal(left, full[:, :, :32])
    with open_source(clip_2997, decoder="pyav", crop="8,4,16,20") as boxed:
        box = next(boxed.batches(TakeAll(), 4)).frames
    assert np.array_equal(box, full[:, 4:24, 8:24])


def test_probe_and_bad_inputs(clip_2997: Path, tmp_path: Path) -> None:
    info = probe(clip_2997)
    assert (info.width, info.height, info.codec) == (64, 48, "h264")
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.duration_s == pytest.approx(40 * 1001 / 30000, abs=0.05)
    with pytest.raises(InputError, match="no such"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00not a video" * 100)
    with pytest.raises(InputError):
        probe(tmp_path / "junk.mp4")
    with pytest.raises(UsageError):
        open_source(clip_2997, decoder="pyav", crop="60,0,10,10")


def test_auto_decoder_falls_back_to_pyav_without_gpu(clip_2997: Path) -> None:
    name, _ = choose_decoder(clip_2997, "auto")
    assert name in ("pyav", "nvdec")
    assert choose_decoder(clip_2997, "pyav") == ("pyav", [])
    with pytest.raises(UsageError):
        choose_decoder(clip_2997, "ffmpeg")


def test_host_batches_stay_under_the_byte_cap(clip_2997: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import fsrun.sources.pyav_source as pyav_source

    monkeypatch.setattr(pyav_source, "HOST_BATCH_BYTES", 3 * 48 * 64 * 3 + 1)  # 3 frames fit
    with PyAvSource(clip_2997) as source:
        batches = list(source.batches(TakeAll(), 16))
    assert [len(b) for b in batches] == [3] * 13 + [1]  # 40 frames, none lost
    assert all(b.frames.nbytes <= pyav_source.HOST_BATCH_BYTES for b in batches)


def test_frame_at_is_on_the_presented_clock_and_upright(tmp_path: Path) -> None:
    """The viewer's picture: the frame shown at a time of the script's clock, turned upright."""
    import sys

    import av

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
    import badfiles
    import edgefiles

    from fsrun.sources.pyav_source import PyAvSource

    clip = badfiles.write_video(tmp_path / "clip.mp4", count=90)
    late = edgefiles.remux(clip, tmp_path / "late.ts", 600.0, "mpegts")
    with PyAvSource(clip) as plain, PyAvSource(late) as shifted:
        assert np.array_equal(plain.frame_at(2.0), shifted.frame_at(2.0))
        assert not np.array_equal(plain.frame_at(2.0), plain.frame_at(1.0))
    with av.open(str(clip)) as container:  # PyAV alone: the frame at 2.0 s
        expected = next(f for f in container.decode(video=0) if abs(f.time - 2.0) < 1e-3)
        assert np.array_equal(PyAvSource(clip).frame_at(2.0),
                              expected.to_ndarray(format="rgb24"))
    turned = badfiles.rotated(tmp_path, 90)  # stored 64x48, shown 48x64
    with PyAvSource(turned) as source:
        assert source.frame_at(0.5).shape == (64, 48, 3)
