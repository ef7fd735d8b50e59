"""An exclusive lock between processes on one machine: `fcntl.flock` on POSIX, `msvcrt.locking`
on Windows. The operating system drops the lock when its holder dies, so a killed run never
leaves a lock behind. Locks on network filesystems (NFS, SMB) are not relied on: a shared
cache folder written from several machines is not supported (docs/architecture.md).
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Callable

from fsrun.files.atomic import os_reason

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

# How often a waiting process tries again (it checks for SIGINT/SIGTERM in between).
POLL_S = 0.1
# Times a lock is taken again because its file was replaced meanwhile, before it is kept as is.
IDENTITY_TRIES = 5


class LockUnavailable(OSError):
    """This platform or filesystem cannot lock files."""


class FileLock:
    """`with FileLock(path, on_wait=...)`: holds the lock file's exclusive lock for the block.

    on_wait(seconds_waited) is called once when another process holds the lock, and then
    about every `remind_s`; check(), when given, runs between tries (it may raise to give up).
    """

    def __init__(self, path: Path | str, on_wait: Callable[[float], None] | None = None,
                 check: Callable[[], None] | None = None, remind_s: float = 60.0):
        self.path = Path(path)
        self.on_wait = on_wait
        self.check = check
        self.remind_s = remind_s
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, waiting while another process holds it. A lock won on a file that
        was meanwhile removed or replaced (someone cleared the folder) is worth nothing: the
        next process would lock the new file. So the lock counts only once the path still
        names the locked file; otherwise it is taken again on what the path names now."""
        if fcntl is None and msvcrt is None:
            raise LockUnavailable("no file locking on this platform")
        began, told, replaced = time.monotonic(), None, 0
        while True:
            fd = _open_lock_file(self.path)
            try:
                while not _try_lock(fd):
                    waited = time.monotonic() - began
                    if self.on_wait is not None and (told is None
                                                     or waited - told >= self.remind_s):
                        told = waited
                        self.on_wait(waited)
                    if self.check is not None:
                        self.check()
                    time.sleep(POLL_S)
            except BaseException:
                os.close(fd)
                raise
            # A filesystem whose stat and fstat disagree on identity for ever (some network or
            # FUSE mounts) cannot tell a replaced file: after a few tries the lock is taken as is.
            if _names(self.path, fd) or replaced >= IDENTITY_TRIES:
                self._fd = fd
                return
            replaced += 1
            _unlock(fd)
            os.close(fd)

    def still_held(self) -> bool:
        """Whether this lock is held and its path still names the locked file."""
        return self._fd is not None and _names(self.path, self._fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # its folder was removed: make it again
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _names(path: Path, fd: int) -> bool:
    """Whether path is (still) the file open as fd."""
    try:
        here, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _try_lock(fd: int) -> bool:
    """True when the lock was taken, False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
            return False
        raise LockUnavailable(f"cannot lock {os_reason(exc)}") from None
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
