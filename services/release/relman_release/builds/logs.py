"""Build logs: lines taken from a builder's thread, stored in batches, and followers woken.

:class:`BuildLog` numbers a running build's lines and stores them every
:data:`FLUSH_SECONDS` (or sooner when many are waiting); followers read the stored lines
only, so a line seen once is durable and a resumed stream (``after_seq``) has no gaps.
:class:`LogHub` wakes the followers in this process when lines are stored; followers of a
build running in another process poll (:data:`POLL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from relman_common.clock import Clock, utcnow

from relman_release.domain.model import LogLine

log = logging.getLogger("relman.builds")

FLUSH_SECONDS = 0.2
POLL_SECONDS = 0.5
# Lines waiting to be stored before the builder's thread waits for a flush.
MAX_PENDING = 2000
# Lines kept per build: past this, only the last TAIL_LINES are (the end says why it failed).
MAX_LOG_LINES = 100_000
TAIL_LINES = 200
MAX_LINE_CHARS = 4000


def clean_line(text: str) -> str:
    """A line as stored: no NUL (PostgreSQL text cannot hold it), at most MAX_LINE_CHARS.

    >>> clean_line("a\\x00b"), len(clean_line("x" * 5000))
    ('a\\\\0b', 4001)
    """
    text = text.replace("\x00", "\\0")
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…"


class LogHub:
    """Wakes the tasks following a build's log in this process when its lines are stored."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def version(self, build_id: str) -> int:
        return self._versions.get(build_id, 0)

    def notify(self, build_id: str, *, last: bool = False) -> None:
        """New lines (or the end, ``last``) of ``build_id``; call on the event loop."""
        if last:
            self._versions.pop(build_id, None)
        else:
            self._versions[build_id] = self.version(build_id) + 1
        for waiter in self._waiters.pop(build_id, []):
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, build_id: str, seen: int, at_most: float = POLL_SECONDS) -> None:
        """Returns when ``build_id`` changed since version ``seen``, or after ``at_most`` s."""
        if self.version(build_id) != seen:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(build_id, []).append(waiter)
        try:
            async with asyncio.timeout(at_most):
                await waiter
        except TimeoutError:
            waiters = self._waiters.get(build_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(build_id, None)


class BuildLog:
    """The log of one running build. ``line`` may be called from any thread; ``flush`` and
    ``close`` run on the event loop and store through ``store`` (one transaction each)."""

    def __init__(
        self,
        build_id: str,
        store: Callable[[list[LogLine]], Awaitable[None]],
        hub: LogHub,
        clock: Clock = utcnow,
    ) -> None:
        self.build_id = build_id
        self._store = store
        self._hub = hub
        self._clock = clock
        self._lock = threading.Condition()
        self._pending: list[LogLine] = []
        self._seq = 0
        self._dropped = 0
        self._tail: deque[tuple[datetime, str]] = deque(maxlen=TAIL_LINES)

    def line(self, text: str) -> None:
        now = self._clock()
        with self._lock:
            while len(self._pending) >= MAX_PENDING:
                self._lock.wait(FLUSH_SECONDS)
            if self._seq >= MAX_LOG_LINES - TAIL_LINES - 1:
                self._dropped += 1
                self._tail.append((now, clean_line(text)))
                return
            self._seq += 1
            self._pending.append(LogLine(self._seq, now, clean_line(text)))

    async def flush(self) -> None:
        """Stores the lines waiting; when that fails (the database is away, the build was
        deleted with its app) they are dropped with a warning: the build goes on."""
        with self._lock:
            lines, self._pending = self._pending, []
            self._lock.notify_all()
        if not lines:
            return
        try:
            await self._store(lines)
        except Exception as err:
            log.warning("build %s: %d log lines not stored: %s", self.build_id, len(lines), err)
            return
        self._hub.notify(self.build_id)

    async def keep_flushing(self) -> None:
        """Stores the lines every FLUSH_SECONDS until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def close(self) -> None:
        """Stores every line left: past MAX_LOG_LINES, a note of how many were not kept and
        the last TAIL_LINES."""
        with self._lock:
            if self._dropped > len(self._tail):
                skipped = self._dropped - len(self._tail)
                self._append_locked(self._clock(), f"[relman: {skipped} log lines not kept]")
            for when, text in self._tail:
                self._append_locked(when, text)
            self._tail.clear()
            self._dropped = 0
        await self.flush()

    def _append_locked(self, when: datetime, text: str) -> None:
        self._seq += 1
        self._pending.append(LogLine(self._seq, when, text))
