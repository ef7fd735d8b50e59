"""SIGINT and SIGTERM become fsrun.errors.Interrupted at a safe point, not in the middle of a write.

`with interrupt_guard():` installs the handlers (main thread only). A first signal only records
itself; the pipeline calls `raise_if_interrupted()` between batches, after the embedding cache
has been flushed, and before the funscript is written, so a stopped run leaves a consistent
cache and no output. A second signal raises at once, for a user who does not want to wait.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from fsrun.errors import Interrupted

# Signals that stop a run cleanly; SIGTERM is what service managers and `kill` send.
HANDLED_SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)

_requested: int | None = None  # the first signal received while a guard is active
_depth = 0  # nested guards share one installation


def interrupt_requested() -> int | None:
    """The signal number asked to stop, or None."""
    return _requested


def raise_if_interrupted(detail: str = "") -> None:
    """Call at safe points: raises Interrupted once a stop was requested."""
    if _requested is not None:
        name = signal.Signals(_requested).name
        raise Interrupted(f"stopped by {name}" + (f"; {detail}" if detail else ""))


def reset() -> None:
    """Forget a recorded request (a folder run that handled it, or a test)."""
    global _requested
    _requested = None


def _handler(signum: int, frame: Any) -> None:
    global _requested
    if _requested is not None:
        raise Interrupted(f"stopped by {signal.Signals(signum).name} (second signal)")
    _requested = signum


@contextmanager
def interrupt_guard() -> Iterator[None]:
    """Route SIGINT/SIGTERM to the safe-point mechanism for the duration of the block."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous: dict[int, Any] = {}
    if _depth == 0:
        reset()
        for signum in HANDLED_SIGNALS:
            previous[signum] = signal.signal(signum, _handler)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for signum, old in previous.items():
                signal.signal(signum, old)
