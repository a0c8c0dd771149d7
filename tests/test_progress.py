"""The progress bar: drawn on a terminal after its delay, never when quiet or not a terminal."""
from __future__ import annotations

import io

from convertkit.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_and_cleared():
    out = Tty()
    with Progress(4, "calibrating", stream=out, delay=0.0) as bar:
        for i in range(4):
            bar.update(i + 1)
    text = out.getvalue()
    assert "calibrating [" in text and "4/4" in text and text.endswith("\r")


def test_silent_when_quiet_or_piped():
    for stream, quiet in ((Tty(), True), (io.StringIO(), False)):
        with Progress(3, "x", stream=stream, delay=0.0, quiet=quiet) as bar:
            bar.update()
        assert stream.getvalue() == ""


def test_not_drawn_before_the_delay():
    out = Tty()
    with Progress(3, "x", stream=out, delay=60.0) as bar:
        bar.update()
    assert out.getvalue() == ""
