"""Progress on stderr (frames, frames/s, ETA): a bar redrawn in place on a terminal, and a plain
line every LINE_EVERY_S seconds anywhere else (a log file, a service, a notebook), so long work
is never silent. `--quiet` turns both off."""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

# Seconds between plain progress lines when stderr is not a terminal.
LINE_EVERY_S = 10.0


class Progress:
    """update(n) after each batch; close() at the end. A bar redraws at most 10 times a second.

    enabled: True draws the bar, False shows nothing, None picks: the bar on a terminal, plain
    lines elsewhere (`lines`). `done_before` items were done by an earlier run (a resumed run's
    cached frames): they fill the bar but not the rate, so the rate and the ETA are those of
    the work still to do."""

    def __init__(self, total: int | None, label: str = "frames", enabled: bool | None = None,
                 stream: TextIO | None = None, width: int = 30, done_before: int = 0,
                 clock: Callable[[], float] = time.perf_counter, prefix: str = "fsrun: ",
                 line_every_s: float = LINE_EVERY_S):
        self.stream = stream or sys.stderr
        terminal = _is_terminal(self.stream)
        self.enabled = terminal if enabled is None else enabled  # the bar
        self.lines = enabled is None and not terminal  # plain lines every line_every_s
        self.prefix = prefix
        self.line_every_s = line_every_s
        self.total = total if total and total > 0 else None
        self.label = label
        self.width = width
        self.count = done_before
        self.done_before = done_before
        self.clock = clock
        self._start = clock()
        self._last_draw = 0.0

    def update(self, n: int) -> None:
        self.count += n
        now = self.clock()
        if self.enabled and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(now)
        elif self.lines and now - max(self._last_draw, self._start) >= self.line_every_s:
            self._last_draw = now
            self.stream.write(self.prefix + self.line(now, bar=False) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None, bar: bool = True) -> str:
        """The text of the bar, e.g. `[#####-----]  150/300 frames  42.0 frames/s  ETA 0:04`
        (without the brackets when bar is False)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = (self.count - self.done_before) / elapsed
        text = f"{self.count} {self.label}  {rate:.1f} {self.label}/s"
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(done * self.width)
            drawn = "#" * filled + "-" * (self.width - filled)
            eta = clock_text(max((self.total - self.count) / rate, 0.0)) if rate > 0 else "?"
            text = (f"{self.count}/{self.total} {self.label}  {rate:.1f} {self.label}/s"
                    f"  ETA {eta}")
            if bar:
                text = f"[{drawn}] {text}"
        return text

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
