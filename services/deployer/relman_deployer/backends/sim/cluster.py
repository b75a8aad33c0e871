"""What every part of the sim shares: its apps, the clock that stamps events, the random
names, one sequence of creation numbers, the event loop's timers, and what observers see."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from relman_common.clock import Clock

from relman_deployer.backends.base import BackendEvent
from relman_deployer.backends.sim.model import App


class Cluster:
    def __init__(self, *, clock: Clock, rng: random.Random, namespace_prefix: str) -> None:
        self.clock = clock
        self.rng = rng
        self.apps: dict[str, App] = {}
        # Set by the first apply(), the only way pods come to exist.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._prefix = namespace_prefix
        self._seq = 0

    def app(self, name: str) -> App:
        app = self.apps.get(name)
        if app is None:
            app = self.apps[name] = App(name, self.namespace(name))
        return app

    def namespace(self, name: str) -> str:
        return f"{self._prefix}-{name}"

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def later(self, delay: float, callback: Callable[..., None], *args: Any) -> asyncio.Handle:
        assert self.loop is not None  # set by apply(), the only way pods come to exist
        if delay <= 0:
            return self.loop.call_soon(callback, *args)
        return self.loop.call_later(delay, callback, *args)

    def emit(self, app: App, obj: str, reason: str, message: str, type_: str = "Normal") -> None:
        """An Event about ``obj`` (``system/k8s/<obj>``) to every observer of ``app``."""
        event = BackendEvent(
            time=self.clock(),
            source=f"system/k8s/{obj}",
            reason=reason,
            message=message,
            type=type_,
        )
        for observer in list(app.observers):
            observer.push(event)

    def publish_status(self, app: App) -> None:
        """``app``'s status to its observers, when it changed since the last one."""
        status = app.status()
        if status == app.last_status:
            return
        app.last_status = status
        for observer in list(app.observers):
            observer.push(status)
