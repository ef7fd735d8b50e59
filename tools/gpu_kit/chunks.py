"""Wheels carried to the GPU machine in pieces: split here, receive and reassemble there.

The wheels are laid end to end as one byte stream and cut into parts of at most `chunk_bytes`.
Each part goes in its own folder (chunk-01/, chunk-02/, ...) beside a copy of the manifest, so
one device call carries one folder and any single folder tells the receiver the whole plan.
The receiver keeps verified parts in a state folder that survives between calls while the
machine stays warm; a wheel is rebuilt as soon as every part that covers its bytes has arrived
and is checked against its sha256 before pip sees it. Receiving the same part twice is a no-op,
so a repeated call does no harm.

Standard library only: the receiving side runs before anything is installed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SCHEMA = 1
MiB = 1 << 20
_BUFFER = 8 * MiB


class KitError(Exception):
    """A chunk or wheel failed verification, or the kit on disk is not what it claims."""


@dataclass(frozen=True)
class FileEntry:
    name: str  # file name (a wheel) as pip saved it
    size: int  # bytes
    sha256: str  # hex digest of the whole file
    offset: int  # position of its first byte in the concatenated stream

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class ChunkEntry:
    index: int  # 1-based
    offset: int  # position of its first byte in the stream
    size: int  # bytes in this part
    sha256: str  # hex digest of the part

    @property
    def folder(self) -> str:
        return f"chunk-{self.index:02d}"

    @property
    def part(self) -> str:
        return f"part-{self.index:02d}.bin"

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass
class Manifest:
    files: list[FileEntry]  # in stream order
    chunks: list[ChunkEntry]  # in stream order, covering it without gaps
    chunk_bytes: int  # the size every part but the last has
    info: dict[str, Any] = field(default_factory=dict)  # python version, tags, tree size ...
    schema: int = SCHEMA

    @property
    def kit_id(self) -> str:
        """Names this exact set of files: state from another kit is never mixed in."""
        digest = hashlib.sha256("".join(f.sha256 for f in self.files).encode()).hexdigest()
        return f"{digest[:12]}-{self.chunk_bytes}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def chunks_of(self, entry: FileEntry) -> list[ChunkEntry]:
        """The parts holding any byte of one file."""
        return [c for c in self.chunks if c.offset < entry.end and c.end > entry.offset]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "kit_id": self.kit_id}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("schema") != SCHEMA:
            raise KitError(f"manifest schema {data.get('schema')}, expected {SCHEMA}")
        manifest = cls(files=[FileEntry(**f) for f in data["files"]],
                       chunks=[ChunkEntry(**c) for c in data["chunks"]],
                       chunk_bytes=int(data["chunk_bytes"]), info=data.get("info", {}))
        manifest.check()
        return manifest

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KitError(f"{path}: not a readable kit manifest ({exc})") from None

    def check(self) -> None:
        """The files and the parts each tile the same stream exactly."""
        position = 0
        for entry in self.files:
            if entry.offset != position or entry.size < 0:
                raise KitError(f"manifest: {entry.name} does not start where the last file ends")
            position = entry.end
        total, position = position, 0
        for number, chunk in enumerate(self.chunks, start=1):
            if chunk.index != number or chunk.offset != position or chunk.size <= 0:
                raise KitError(f"manifest: chunk {chunk.index} is out of place")
            position = chunk.end
        if position != total:
            raise KitError(f"manifest: the chunks hold {position} bytes, the files {total}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BUFFER):
            digest.update(block)
    return digest.hexdigest()


def plan_chunks(total: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """(offset, size) of each part of a stream of `total` bytes."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return [(offset, min(chunk_bytes, total - offset)) for offset in range(0, total, chunk_bytes)]


def _stream(files: list[Path]) -> Any:
    """Blocks of the files' bytes, end to end."""
    for path in files:
        with open(path, "rb") as f:
            while block := f.read(_BUFFER):
                yield block


def write_kit(files: list[Path], dest: Path, chunk_bytes: int,
              info: dict[str, Any] | None = None) -> Manifest:
    """Split `files` (in this order) into dest/chunk-NN/ folders; returns the manifest.

    Old chunk folders in `dest` are removed first, so the folder holds exactly one kit.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("chunk-*"):
        shutil.rmtree(old)
    entries, offset = [], 0
    for path in files:
        size = path.stat().st_size
        entries.append(FileEntry(path.name, size, sha256_file(path), offset))
        offset += size
    chunks: list[ChunkEntry] = []
    blocks, pending = _stream(files), b""
    for index, (start, size) in enumerate(plan_chunks(offset, chunk_bytes), start=1):
        folder = dest / f"chunk-{index:02d}"
        folder.mkdir()
        digest, written = hashlib.sha256(), 0
        with open(folder / f"part-{index:02d}.bin", "wb") as out:
            while written < size:
                if not pending:
                    pending = next(blocks)
                piece, pending = pending[:size - written], pending[size - written:]
                out.write(piece)
                digest.update(piece)
                written += len(piece)
        chunks.append(ChunkEntry(index, start, size, digest.hexdigest()))
    manifest = Manifest(entries, chunks, chunk_bytes, dict(info or {}))
    manifest.check()
    text = manifest.to_json()
    for chunk in chunks:
        _atomic_text(dest / chunk.folder / MANIFEST, text)
    _atomic_text(dest / MANIFEST, text)
    return manifest


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _copy_verified(source: Path, dest: Path, size: int, sha256: str, what: str) -> None:
    """Copy to dest through a temp name, hashing on the way; nothing is left on a mismatch."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    digest = hashlib.sha256()
    with open(source, "rb") as f, open(tmp, "wb") as out:
        while block := f.read(_BUFFER):
            digest.update(block)
            out.write(block)
    if tmp.stat().st_size != size or digest.hexdigest() != sha256:
        tmp.unlink()
        raise KitError(f"{what}: sha256 mismatch ({digest.hexdigest()[:16]}..., expected "
                       f"{sha256[:16]}...); the copy is damaged: carry it again")
    os.replace(tmp, dest)


class Receiver:
    """The GPU side: verified parts in state/parts, rebuilt wheels in state/wheels."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.parts = self.state / "parts"
        self.wheels = self.state / "wheels"

    @property
    def manifest(self) -> Manifest | None:
        path = self.state / MANIFEST
        return Manifest.read(path) if path.is_file() else None

    def _adopt(self, manifest: Manifest) -> None:
        """Start over when a different kit arrives; keep everything for the same one."""
        current = self.manifest
        if current is not None and current.kit_id == manifest.kit_id:
            return
        for folder in (self.parts, self.wheels):
            shutil.rmtree(folder, ignore_errors=True)
        self.state.mkdir(parents=True, exist_ok=True)
        _atomic_text(self.state / MANIFEST, manifest.to_json())

    def receive(self, chunk_dir: Path) -> ChunkEntry:
        """Verify one carried chunk folder and keep its part; idempotent."""
        chunk_dir = Path(chunk_dir)
        manifest = Manifest.read(chunk_dir / MANIFEST)
        parts = [p for p in chunk_dir.glob("part-*.bin")]
        if len(parts) != 1:
            raise KitError(f"{chunk_dir}: expected one part-NN.bin, found {len(parts)}")
        index = int(parts[0].stem.split("-")[1])
        if not 1 <= index <= len(manifest.chunks):
            raise KitError(f"{parts[0]}: the manifest has no chunk {index}")
        chunk = manifest.chunks[index - 1]
        self._adopt(manifest)
        self.parts.mkdir(parents=True, exist_ok=True)
        kept = self.parts / chunk.part
        if kept.is_file() and kept.stat().st_size == chunk.size:
            return chunk  # verified when it was kept
        _copy_verified(parts[0], kept, chunk.size, chunk.sha256, f"chunk {index} ({chunk_dir})")
        return chunk

    def present(self) -> list[int]:
        manifest = self.manifest
        if manifest is None:
            return []
        return [c.index for c in manifest.chunks if (self.parts / c.part).is_file()
                and (self.parts / c.part).stat().st_size == c.size]

    def missing(self) -> list[int]:
        manifest = self.manifest
        have = set(self.present())
        return [] if manifest is None else [c.index for c in manifest.chunks
                                            if c.index not in have]

    def ready(self) -> list[FileEntry]:
        """Files every part of which has arrived."""
        manifest = self.manifest
        if manifest is None:
            return []
        have = set(self.present())
        return [f for f in manifest.files
                if all(c.index in have for c in manifest.chunks_of(f))]

    def assemble(self) -> list[Path]:
        """Rebuild each ready file once and verify it; returns the verified paths."""
        manifest = self.manifest
        if manifest is None:
            return []
        self.wheels.mkdir(parents=True, exist_ok=True)
        done = []
        for entry in self.ready():
            path = self.wheels / entry.name
            stamp = self.wheels / f".{entry.name}.sha256"
            if not (path.is_file() and stamp.is_file()
                    and stamp.read_text().strip() == entry.sha256):
                self._rebuild(manifest, entry, path)
                stamp.write_text(entry.sha256 + "\n")
            done.append(path)
        return done

    def _rebuild(self, manifest: Manifest, entry: FileEntry, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in manifest.chunks_of(entry):
                start = max(entry.offset, chunk.offset) - chunk.offset
                stop = min(entry.end, chunk.end) - chunk.offset
                with open(self.parts / chunk.part, "rb") as f:
                    f.seek(start)
                    left = stop - start
                    while left > 0:
                        block = f.read(min(_BUFFER, left))
                        if not block:
                            break
                        digest.update(block)
                        out.write(block)
                        left -= len(block)
        if tmp.stat().st_size != entry.size or digest.hexdigest() != entry.sha256:
            tmp.unlink()
            bad = [c.index for c in manifest.chunks_of(entry)]
            for index in bad:  # one of them is damaged on disk: make them be carried again
                (self.parts / manifest.chunks[index - 1].part).unlink(missing_ok=True)
            raise KitError(f"{entry.name}: sha256 mismatch after reassembly; chunks "
                           f"{', '.join(map(str, bad))} were dropped: carry them again")
        os.replace(tmp, path)
