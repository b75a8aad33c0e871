"""Live Watch on every Deployer: PostgreSQL LISTEN for the events other Deployers write.

A deployment's events are published in the process that runs it (:mod:`.hub`). A watcher in
another Deployer used to find new events by reading the database every 250 ms; now each
Deployer on PostgreSQL keeps one connection listening on the channel the writers notify (in
the transaction that writes the events, see :mod:`relman_deployer.store.notify`), and wakes
the watchers of the deployments named, which then read what is new. The watchers' own
look at the database (every LOCAL_POLL_SECONDS) stays as a safety net; while the listening
connection is down (it reconnects with backoff), watchers poll as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from sqlalchemy import Engine

from relman_deployer.events.hub import EventHub
from relman_deployer.store.notify import CHANNEL

log = logging.getLogger("relman.deployer.listen")

MAX_BACKOFF_SECONDS = 5.0


def libpq_url(engine: Engine) -> str:
    """The engine's database as a URL psycopg connects to (password included)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class EventListener:
    """Listens on the events channel of ``engine``'s database and pokes ``hub``'s watchers."""

    def __init__(self, engine: Engine, hub: EventHub) -> None:
        self._url = libpq_url(engine)
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._hub.listening = False

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._hub.listening = True
                    self.connected.set()
                    delay = 0.1
                    # Whatever was written while not listening: every watcher looks.
                    self._hub.poke_all()
                    async for note in conn.notifies():
                        for deployment_id in note.payload.split(","):
                            self._hub.poke(deployment_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the connection died, or the database is down
                log.warning("listening for events: %s; again in %.1fs", err, delay)
            self._hub.listening = False
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
