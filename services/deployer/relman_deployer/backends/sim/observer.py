"""An observer of one sim app: a queue of everything the sim publishes about the app."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

from relman_deployer.backends.base import Observation, RolloutStatus


class SimObserver:
    """One observer of one app: its own queue of everything published from its creation on.

    An async iterator (and ``aclose()``-able, so ``contextlib.aclosing`` works). It stops
    when closed or when the backend closes. Dropping it without closing also unsubscribes.
    """

    def __init__(self, observers: weakref.WeakSet[SimObserver], first: RolloutStatus) -> None:
        self._observers = observers
        self._queue: deque[Observation] = deque([first])
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        observers.add(self)

    def push(self, item: Observation) -> None:
        if self._closed:
            return
        self._queue.append(item)
        self._wake()

    def end(self) -> None:
        self._closed = True
        self._observers.discard(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> SimObserver:
        return self

    async def __anext__(self) -> Observation:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Unsubscribe; what was queued is dropped and iteration stops."""
        self._queue.clear()
        self.end()
