"""PyNvVideoCodec installed on a machine whose driver lacks the video libraries: its import
raises RuntimeError (it checks libnvidia-encode at import). fsrun must turn that into a
one-line error and let `--decoder auto` fall back to PyAV, without a GPU to show it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fsrun.errors import UsageError
from fsrun.sources import nvdec_source

MESSAGE = ("Failed to load NVENC library: libnvidia-encode.so.1: cannot open shared object "
           "file: No such file or directory")


@pytest.fixture
def unloadable_pynvvideocodec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "fake" / "PyNvVideoCodec"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise RuntimeError({MESSAGE!r})\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec", raising=False)
    monkeypatch.setattr(nvdec_source, "gpu_libraries_available", lambda: True)


@pytest.mark.usefixtures("unloadable_pynvvideocodec")
def test_import_failure_is_a_one_line_error() -> None:
    with pytest.raises(UsageError) as info:
        nvdec_source.import_nvc()
    text = str(info.value)
    assert "libnvidia-encode.so.1" in text and "--decoder pyav" in text
    assert "\n" not in text


@pytest.mark.usefixtures("unloadable_pynvvideocodec")
def test_auto_decoder_falls_back_to_pyav(tmp_path: Path) -> None:
    from fsrun.run.plan import choose_decoder

    assert nvdec_source.is_available()  # installed, so auto asks it
    ok, reason = nvdec_source.supports(tmp_path / "clip.mp4")
    assert not ok and "cannot load" in reason and "using PyAV" in reason
    decoder, notes = choose_decoder(tmp_path / "clip.mp4", "auto")
    assert decoder == "pyav" and any("libnvidia-encode" in n for n in notes)
