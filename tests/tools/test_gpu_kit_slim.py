"""The slimmed onnxruntime-gpu (one GPU generation's kernels) and the 15-minute plan's clock."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from tools.gpu_kit.plan import CALLS, PLAN_END_S, SESSION_S, command, schedule
from tools.gpu_kit.slim import FATBIN_MAGIC, keep_one_arch, section, slim_wheel


def _entry(kind: int, arch: int, payload: bytes) -> bytes:
    header = struct.pack("<HHIQIIHHI", kind, 0x101, 64, len(payload), 0, 0, 0, 0, arch)
    return header + bytes(64 - len(header)) + payload


def _fatbin(entries: list[bytes]) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body


def fake_provider(fatbins: list[bytes]) -> bytes:
    """A minimal ELF64 file whose .nv_fatbin section holds the given fat binaries."""
    blob = b"".join(fb + bytes(-len(fb) % 8) for fb in fatbins)
    names = b"\0.nv_fatbin\0.shstrtab\0"
    fatbin_at = 64
    names_at = fatbin_at + len(blob)
    headers_at = names_at + len(names) + (-(names_at + len(names)) % 8)
    elf = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    elf += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, headers_at, 0, 64, 0, 0, 64, 3, 2)
    elf += blob + names + bytes(headers_at - names_at - len(names))
    section_headers = [(0, 0, 0, 0), (1, 1, fatbin_at, len(blob)), (11, 3, names_at, len(names))]
    for name, kind, offset, size in section_headers:
        elf += struct.pack("<IIQQQQIIQQ", name, kind, 0, 0, offset, size, 0, 0, 1, 0)
    return bytes(elf)


def test_only_the_kept_architecture_survives_and_the_layout_does_not_move() -> None:
    keep, other, ptx = b"\x11" * 40, b"\x22" * 24, b"\x33" * 16
    data = bytearray(fake_provider([_fatbin([_entry(2, 80, other), _entry(2, 90, keep)]),
                                    _fatbin([_entry(1, 70, ptx), _entry(2, 120, other)])]))
    before = len(data)
    report = keep_one_arch(data, 90)
    assert len(data) == before and report.fatbins == 2 and report.ptx == 1
    assert report.kept == {90: 40} and report.zeroed == {80: 24, 120: 24}
    assert keep in data and ptx in data and other not in data
    offset, size = section(data, ".nv_fatbin")
    again = keep_one_arch(bytearray(data), 90)  # still a valid fat binary after zeroing
    assert again.fatbins == 2 and again.kept == {90: 40}


def test_slim_wheel_drops_the_dead_weight_and_rewrites_record(tmp_path: Path) -> None:
    provider = fake_provider([_fatbin([_entry(2, 86, b"\x22" * 4096), _entry(2, 90, b"\x11" * 64)])])
    source = tmp_path / "onnxruntime_gpu-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    files = {"onnxruntime/capi/libonnxruntime_providers_cuda.so": provider,
             "onnxruntime/capi/libonnxruntime.so.1.0": b"c api" * 100,
             "onnxruntime/capi/libonnxruntime_providers_tensorrt.so": b"trt" * 100,
             "onnxruntime/__init__.py": b"x = 1\n"}
    record = "".join(f"{name},sha256=old,{len(data)}\n" for name, data in files.items())
    with zipfile.ZipFile(source, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("onnxruntime_gpu-1.0.dist-info/RECORD",
                       record + "onnxruntime_gpu-1.0.dist-info/RECORD,,\n")
    target = tmp_path / "slim" / source.name
    done = slim_wheel(source, target)
    with zipfile.ZipFile(target) as wheel:
        names = wheel.namelist()
        assert all(i.compress_type == zipfile.ZIP_LZMA for i in wheel.infolist())
        slimmed = wheel.read("onnxruntime/capi/libonnxruntime_providers_cuda.so")
        rows = wheel.read("onnxruntime_gpu-1.0.dist-info/RECORD").decode().splitlines()
    assert "onnxruntime/capi/libonnxruntime.so.1.0" not in names
    assert "onnxruntime/capi/libonnxruntime_providers_tensorrt.so" not in names
    assert len(slimmed) == len(provider) and b"\x22" * 4096 not in slimmed
    assert len(rows) == 3 and all("sha256=old" not in row for row in rows)
    assert done["fatbin"]["zeroed"] == {86: 4096} and len(done["dropped"]) == 2


def test_a_wheel_without_the_kept_architecture_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "w.whl"
    with zipfile.ZipFile(source, "w") as wheel:
        wheel.writestr("onnxruntime/capi/libonnxruntime_providers_cuda.so",
                       fake_provider([_fatbin([_entry(2, 80, b"\x22" * 8)])]))
        wheel.writestr("x.dist-info/RECORD", "")
    with pytest.raises(ValueError, match="no sm_90 cubins"):
        slim_wheel(source, tmp_path / "out.whl")


def test_the_plan_ends_in_time_and_puts_the_headline_first() -> None:
    rows = schedule()
    assert rows[-1]["ends_s"] <= PLAN_END_S and SESSION_S - rows[-1]["ends_s"] >= 180
    stages = [stage for call in CALLS for stage in call.stages]
    assert stages.index("nvdec") < stages.index("network")
    assert all(call.timeout_s <= 600 for call in CALLS)
    assert command(CALLS[1], ".gpukit/cp312") == (
        "python3 -m tools.gpu_kit.device --deadline 230 --chunk .gpukit/cp312/chunk-02 nvdec")
