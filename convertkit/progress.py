"""A progress bar for steps that take more than a moment (calibration, large exports).

Drawn on stderr only when stderr is a terminal and not ``quiet``; otherwise silent. It appears only
after ``delay`` seconds, so fast runs stay uncluttered.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, *, quiet: bool = False, stream: TextIO | None = None,
                 delay: float = 1.0) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start, self.delay, self.drawn = time.monotonic(), delay, False

    def update(self, done: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        if not self.enabled or time.monotonic() - self.start < self.delay:
            return
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        elapsed = time.monotonic() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {elapsed:.0f}s, {eta:.0f}s left ")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
