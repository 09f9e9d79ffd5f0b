"""Progress reporting: a plain callback interface, and a light terminal bar for the CLI."""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """Receives progress of a long operation."""

    def start(self, label: str, total: int) -> None:
        """A phase begins; ``total`` is in bytes (or items), 0 when unknown."""

    def advance(self, n: int) -> None:
        """``n`` more units are done."""

    def finish(self) -> None:
        """The phase is over."""


class NullProgress:
    """Reports nothing."""

    def start(self, label: str, total: int) -> None:  # noqa: D102
        pass

    def advance(self, n: int) -> None:  # noqa: D102
        pass

    def finish(self) -> None:  # noqa: D102
        pass


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 object``, ``2 objects``: ``n`` and the noun in the number it takes (``plural``
    when adding an s will not do)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_bytes(n: float) -> str:
    """``1.5 GiB`` style sizes (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class TerminalProgress:
    """A one-line progress bar on a terminal, redrawn at most ten times a second.

    Args:
        stream: where to draw (stderr by default).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self.label = ""
        self.total = 0
        self.done = 0
        self._t0 = 0.0
        self._last = 0.0

    def start(self, label: str, total: int) -> None:
        """Begin a new bar."""
        with self._lock:
            self.label, self.total, self.done = label, total, 0
            self._t0 = self._last = time.monotonic()
            self._draw()

    def advance(self, n: int) -> None:
        """Add ``n`` to the count and redraw when due."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        with self._lock:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = human_bytes(self.done / elapsed) + "/s"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            line = (
                f"\r{self.label:<10} [{bar:<30}] {frac:6.1%} "
                f"{human_bytes(self.done)}/{human_bytes(self.total)} {rate}"
            )
        else:
            line = f"\r{self.label:<10} {human_bytes(self.done)} {rate}"
        self.stream.write(line + "\x1b[K")
        self.stream.flush()


def for_terminal(stream: TextIO | None = None) -> Progress:
    """A bar when ``stream`` (stderr by default) is a terminal, otherwise silence."""
    s = stream or sys.stderr
    try:
        tty = s.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(s) if tty else NullProgress()
