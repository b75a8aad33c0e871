"""How far a long transfer has got: bytes and rate, on stderr, while it runs.

On a terminal the meter is one line rewritten in place (after half a second, so that small
trees show nothing), continuing the step's own ``Packaging source... `` and leaving it as it
was for the ``OK`` that follows. Elsewhere (a log, CI) it writes a plain line every few
seconds. It writes nothing when quiet (``--id``: stdout is for the id, stderr for the rest,
and a script wants neither cluttered).

>>> from io import StringIO
>>> out, now = StringIO(), [0.0]
>>> meter = Meter("Uploading source", total=4_000_000, stream=out, clock=lambda: now[0])
>>> now[0] = 6.0; meter.update(3_000_000)
>>> out.getvalue()
'Uploading source: 3.0 MB of 4.0 MB (500.0 kB/s)\\n'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from relman_cli.output import is_tty

FIRST_SHOW_SECONDS = 0.5  # a terminal shows nothing for quicker work
REDRAW_SECONDS = 0.1
PLAIN_LINE_SECONDS = 5.0
_CLEAR_TO_END = "\x1b[K"


def size(n: float) -> str:
    """``12.3 MB`` (decimal units, as transfer rates are given)."""
    import humanize

    text: str = humanize.naturalsize(n)
    return text


class Meter:
    """Bytes done of a transfer called ``label``; ``update`` as it goes, ``close`` at the end.

    ``pending`` is the text already on the terminal's current line (the step's
    ``Packaging source... ``) when the step's own output goes to the same terminal.
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        stream: TextIO | None = None,
        quiet: bool = False,
        pending: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        self.pending = pending
        self._clock = clock
        self._in_place = is_tty(self.stream)
        self._start = clock()
        self._shown_at: float | None = None
        self._drawn = False

    def update(self, done: int) -> None:
        if self.quiet:
            return
        now = self._clock()
        elapsed = now - self._start
        if self._in_place:
            due = FIRST_SHOW_SECONDS if self._shown_at is None else REDRAW_SECONDS
            last = self._start if self._shown_at is None else self._shown_at
            if now - last >= due:
                prefix = self.pending or f"{self.label}: "
                self._write(f"\r{prefix}{self.status(done, elapsed)}{_CLEAR_TO_END}")
                self._drawn = True
                self._shown_at = now
        elif now - (self._shown_at or self._start) >= PLAIN_LINE_SECONDS:
            self._write(f"{self.label}: {self.status(done, elapsed)}\n")
            self._shown_at = now

    def status(self, done: int, elapsed: float) -> str:
        """``3.0 MB of 4.0 MB (500.0 kB/s)``."""
        of = f" of {size(self.total)}" if self.total else ""
        rate = f" ({size(done / elapsed)}/s)" if elapsed > 0 else ""
        return f"{size(done)}{of}{rate}"

    def close(self) -> None:
        """Take the in-place line back to what it was before the meter drew on it."""
        if self._drawn:
            self._write(f"\r{self.pending}{_CLEAR_TO_END}")
            self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
