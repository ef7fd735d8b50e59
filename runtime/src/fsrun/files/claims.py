"""Per-video claims, so several fsrun processes can share one folder without doing a video twice.

A claim is a small file next to the output (`.NAME.funscript.claim`) created with O_CREAT|O_EXCL,
which only one process can win, holding the owner's pid, host and start time. The owner touches
it while it works. A claim is stale when its owner is gone: same host and the pid is dead, or
(any host) it has not been touched for `stale_after_s`. Taking over a stale claim goes through a
second exclusive file, so two processes that both see it stale cannot both take it.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsrun.files.atomic import os_reason, remove_quietly
from fsrun.errors import OutputError

CLAIM_SUFFIX = ".claim"
TAKEOVER_SUFFIX = ".takeover"
# A live owner touches its claim this often; one untouched for STALE_AFTER_S is abandoned.
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0


def claim_path(output: Path | str) -> Path:
    """Hidden claim file beside the output: folder listings and players ignore it."""
    output = Path(output)
    return output.with_name(f".{output.name}{CLAIM_SUFFIX}")


@dataclass(frozen=True)
class Owner:
    pid: int  # process id of the owner
    host: str  # host name: a pid is only meaningful on its own host
    started: float  # time.time() when the claim was made

    @classmethod
    def me(cls) -> Owner:
        return cls(os.getpid(), socket.gethostname(), time.time())

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def read_owner(path: Path) -> Owner | None:
    """The owner recorded in a claim file; None when unreadable (being written, or garbage)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return Owner(int(data["pid"]), str(data["host"]), float(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(path: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the claim at path belongs to nobody alive."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > stale_after_s:
        return True
    owner = read_owner(path)
    if owner is None:
        return age > 5.0  # half-written by a process that died between create and write
    if owner.host == socket.gethostname():
        return not _pid_alive(owner.pid)
    return False


class ClaimHeld(Exception):
    """Another live process holds the claim."""

    def __init__(self, path: Path, owner: Owner | None):
        who = owner.describe() if owner else "another process"
        super().__init__(f"being processed by {who}")
        self.path = path
        self.owner = owner


class Claim:
    """`with Claim(output):` holds the video's claim for the block; raises ClaimHeld if taken."""

    def __init__(self, output: Path | str, stale_after_s: float = STALE_AFTER_S,
                 heartbeat_s: float = HEARTBEAT_S):
        self.output = Path(output)
        self.path = claim_path(self.output)
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.owner = Owner.me()
        self.took_over: Owner | None = None  # the dead owner whose claim was taken over
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._held = False

    def acquire(self) -> None:
        if self._create():
            return
        if not is_stale(self.path, self.stale_after_s):
            raise ClaimHeld(self.path, read_owner(self.path))
        self._take_over()

    def _create(self) -> bool:
        """Try the exclusive create; True when this process now owns the claim."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot make the claim for {self.output.name} "
                              f"({os_reason(exc)})") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.owner.__dict__, f)
        except OSError as exc:  # a full disk: no empty claim may stay behind
            remove_quietly(self.path)
            raise OutputError(f"{self.output}: cannot write ({os_reason(exc)})") from None
        self._held = True
        self._start_heartbeat()
        return True

    def _take_over(self) -> None:
        """Replace a stale claim; only the process that wins the takeover file may do it."""
        lock = self.path.with_name(self.path.name + TAKEOVER_SUFFIX)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            # Someone else is taking over; a takeover file left by a crash expires.
            if _age(lock) > 30.0:
                lock.unlink(missing_ok=True)
            raise ClaimHeld(self.path, read_owner(self.path)) from None
        except OSError as exc:
            raise OutputError(f"{lock}: cannot make the claim for {self.output.name} "
                              f"({os_reason(exc)})") from None
        os.close(fd)
        try:
            # Check again under the takeover file: the owner may have finished meanwhile.
            if self.path.exists() and not is_stale(self.path, self.stale_after_s):
                raise ClaimHeld(self.path, read_owner(self.path))
            self.took_over = read_owner(self.path)
            self.path.unlink(missing_ok=True)
            if not self._create():
                raise ClaimHeld(self.path, read_owner(self.path))
        finally:
            lock.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        if self.heartbeat_s <= 0:
            return
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="fsrun-claim", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        """Remove the claim if it is still ours (never another process's)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=1)
        if self._held and read_owner(self.path) == self.owner:
            self.path.unlink(missing_ok=True)
        self._held = False

    def __enter__(self) -> Claim:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
