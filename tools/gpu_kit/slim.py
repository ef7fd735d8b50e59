"""onnxruntime-gpu made small enough to carry: only what an H100 or H200 can load.

The wheel is 244 MiB, four fifths of the whole kit. Three things in it are dead weight on the
GPU machine:
- the CUDA provider's `.nv_fatbin` holds every kernel compiled for six GPU generations (sm_75,
  80, 86, 89, 90, 120: 208 MiB); a Hopper GPU loads the sm_90 cubins only (73 MiB). The other
  cubins' bytes are zeroed in place: every header, offset and size stays as it was, so the ELF
  file and each fat binary stay valid, and the zeros compress to nothing;
- `libonnxruntime.so` is the C API for other languages; Python loads the pybind module, which
  holds the runtime itself (neither provider links the C API library);
- the TensorRT provider needs TensorRT's libraries, which are not carried.
The files are packed again with LZMA (pip reads it), and RECORD is rewritten to match.

Never run on a GPU: if CUDA refuses the slimmed provider, the probe's session check says so, and
the kit can be made with `download --full-ort` instead (README: "If something goes wrong").
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
KEEP_ARCH = 90  # H100 and H200: sm_90
CUDA_PROVIDER = "libonnxruntime_providers_cuda.so"
DROPPED = ("libonnxruntime.so", "libonnxruntime_providers_tensorrt.so")  # name prefixes
ELF_CUBIN = 2  # fat binary entry kinds: 1 PTX text, 2 ELF (a cubin for one architecture)


@dataclass
class FatbinReport:
    fatbins: int = 0  # fat binaries found in the section
    kept: dict[int, int] | None = None  # arch -> cubin bytes kept
    zeroed: dict[int, int] | None = None  # arch -> cubin bytes zeroed
    ptx: int = 0  # PTX entries (always kept: a GPU without a cubin JIT-compiles them)


def section(data: bytes | bytearray, wanted: str) -> tuple[int, int] | None:
    """(file offset, size) of an ELF64 little-endian section, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    entsize, count, names = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * entsize) for i in range(count)]
    table = headers[names][4]
    for name, _kind, _flags, _addr, offset, size in headers:
        end = data.index(b"\0", table + name)
        if bytes(data[table + name:end]).decode() == wanted:
            return offset, size
    return None


def keep_one_arch(data: bytearray, arch: int = KEEP_ARCH) -> FatbinReport:
    """Zero, in place, the payload of every cubin in `.nv_fatbin` built for another arch."""
    found = section(data, ".nv_fatbin")
    report = FatbinReport(kept={}, zeroed={})
    if found is None:
        return report
    position, end = found[0], found[0] + found[1]
    while position + 16 <= end:
        magic, _version, header, size = struct.unpack_from("<IHHQ", data, position)
        if magic != FATBIN_MAGIC:
            position += 8  # fat binaries are 8-byte aligned inside the section
            continue
        report.fatbins += 1
        entry, stop = position + header, position + header + size
        while entry < stop:
            kind, _unknown, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            entry_arch = struct.unpack_from("<I", data, entry + 28)[0]
            body = entry + entry_header
            if kind != ELF_CUBIN:
                report.ptx += 1
            elif entry_arch == arch:
                report.kept[entry_arch] = report.kept.get(entry_arch, 0) + payload
            else:
                data[body:body + payload] = bytes(payload)
                report.zeroed[entry_arch] = report.zeroed.get(entry_arch, 0) + payload
            entry = body + payload
        position = stop
    return report


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def slim_wheel(source: Path, target: Path, arch: int = KEEP_ARCH) -> dict:
    """Write the slimmed copy of an onnxruntime-gpu wheel; returns what was done."""
    done: dict = {"source_bytes": source.stat().st_size, "dropped": [], "arch": arch}
    contents: dict[str, bytes] = {}
    infos: dict[str, zipfile.ZipInfo] = {}
    with zipfile.ZipFile(source) as wheel:
        for info in wheel.infolist():
            base = Path(info.filename).name
            if any(base.startswith(prefix) for prefix in DROPPED):
                done["dropped"].append(info.filename)
                continue
            data = wheel.read(info.filename)
            if base == CUDA_PROVIDER:
                mutable = bytearray(data)
                report = keep_one_arch(mutable, arch)
                if not report.kept:
                    raise ValueError(f"{info.filename}: no sm_{arch} cubins: this wheel cannot "
                                     "run on the GPU it is slimmed for")
                done["fatbin"] = {"fatbins": report.fatbins, "ptx": report.ptx,
                                  "kept": report.kept, "zeroed": report.zeroed}
                data = bytes(mutable)
            contents[info.filename] = data
            infos[info.filename] = info
    record = next(name for name in contents if name.endswith(".dist-info/RECORD"))
    rows = []
    for row in csv.reader(io.StringIO(contents[record].decode("utf-8"))):
        if not row or row[0] not in contents:
            continue
        if row[0] != record:
            row = [row[0], _record_hash(contents[row[0]]), str(len(contents[row[0]]))]
        rows.append(row)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    contents[record] = text.getvalue().encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_LZMA) as wheel:
        for name, data in contents.items():
            info = zipfile.ZipInfo(name, date_time=infos[name].date_time)
            info.external_attr = infos[name].external_attr
            wheel.writestr(info, data, compress_type=zipfile.ZIP_LZMA)
    partial.replace(target)
    done["target_bytes"] = target.stat().st_size
    return done
