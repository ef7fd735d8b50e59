"""One way to write a file so that a reader never sees half of it: a temporary file in the same
folder, flushed, then moved into place. Every failure path removes the temporary file, and an
OSError (a full disk, a read-only or failing filesystem) becomes one OutputError naming the
path, so it reaches the user as exit 5.

    write_atomic(path, text)                 # replaces an existing file
    write_atomic(path, text, replace=False)  # refuses one, even one that appears meanwhile
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from fsrun.errors import OutputError

TMP_SUFFIX = ".tmp"


def os_reason(exc: OSError) -> str:
    """`No space left on device` rather than `[Errno 28] No space left on device: '/x'`."""
    return str(exc.strerror or exc)


def write_atomic(path: Path | str, data: str | bytes, *, replace: bool = True,
                 mode: int = 0o644, fsync: bool = True, what: str = "write") -> Path:
    """Write data to path atomically; OutputError("PATH: cannot WHAT (REASON)") on failure."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path, replace=replace, mode=mode, fsync=fsync, what=what) as f:
        f.write(payload)
    return Path(path)


@contextlib.contextmanager
def atomic_file(path: Path | str, *, replace: bool = True, mode: int = 0o644,
                fsync: bool = True, what: str = "write") -> Iterator[IO[bytes]]:
    """`with atomic_file(path) as f: f.write(...)`: path appears complete when the block ends,
    or not at all when it raises."""
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX,
                                        dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot {what} ({os_reason(exc)})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        _move_into_place(tmp, path, replace)
    except OSError as exc:
        raise OutputError(f"{path}: cannot {what} ({os_reason(exc)})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _move_into_place(tmp: Path, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and refuses a name that appeared meanwhile
    except FileExistsError:
        raise OutputError(f"{path} exists; use --force to overwrite it") from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # Filesystems without hard links: the caller's existence check is the best there is.
        if path.exists():
            raise OutputError(f"{path} exists; use --force to overwrite it") from None
        os.replace(tmp, path)


# errno values of filesystems that cannot make hard links (FAT, some network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def remove_quietly(path: Path | str) -> None:
    """Delete a file if it is there; a failure to delete is not worth a second error."""
    with contextlib.suppress(OSError):
        Path(path).unlink()
