"""What identifies a file by its content, cheaply: the key of every cache that must not serve a
file's results to another file.

A video's fingerprint is its size and the SHA-256 of three blocks of BLOCK bytes: the first,
the middle and the last (the whole file when it is smaller than three blocks). It changes with
any re-encode or remux (the container header and the first packets differ), any file of another
size, and any replacement of the file by another video, even one with the same size and
modification time. It does not see a change that keeps the size and touches only bytes outside
the three blocks (a bit flipped in the middle of a long recording by a failing disk); the
embedding cache checks its own bytes, not the video's. Reading three blocks costs a few
milliseconds, where hashing a whole feature film would cost seconds.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

BLOCK = 1 << 20  # bytes read at each of the three places


def video_fingerprint(path: Path | str) -> str:
    """"SIZE:HASH" of a file's size and its first, middle and last blocks (OSError passes)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest = hashlib.sha256(str(size).encode())
        offsets = sorted({0, max(0, size // 2 - BLOCK // 2), max(0, size - BLOCK)})
        for offset in offsets:
            f.seek(offset)
            digest.update(f.read(BLOCK))
    return f"{size}:{digest.hexdigest()[:32]}"


def sha256_files(paths: list[Path]) -> str:
    """One SHA-256 over several whole files, each preceded by its name (a model and the external
    data files it reads): rewriting any of them changes it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()
