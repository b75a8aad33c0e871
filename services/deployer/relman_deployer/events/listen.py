"""Live Watch on every Deployer: PostgreSQL LISTEN for the events other Deployers write.

A deployment's events are published in the process that runs it (:mod:`.hub`). A watcher in
another Deployer used to find new events by reading the database every 250 ms; now each
Deployer on PostgreSQL keeps one connection listening on the channel the writers notify (in
the transaction that writes the events, see :mod:`relman_deployer.store.notify`), and wakes
the watchers of the deployments named: what is new is read once per notification (events
after the last seq every watcher here has, and the deployment), however many watch, and
delivered to all of them (a watcher that finds a gap reads the database itself). The
watchers' own look at the database (every LOCAL_POLL_SECONDS) stays as a safety net; while the
listening connection is down (it reconnects with backoff), watchers poll as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from sqlalchemy import Engine

from relman_deployer.events.hub import EventHub
from relman_deployer.store.notify import CHANNEL
from relman_deployer.store.repository import DeploymentStore

log = logging.getLogger("relman.deployer.listen")

MAX_BACKOFF_SECONDS = 5.0
# Events read per fetch (a watcher that is further behind reads the rest itself).
FETCH_LIMIT = 1000


def libpq_url(engine: Engine) -> str:
    """The engine's database as a URL psycopg connects to (password included)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class EventListener:
    """Listens on the events channel of ``store``'s database and delivers what other
    processes wrote to ``hub``'s watchers."""

    def __init__(self, store: DeploymentStore, hub: EventHub) -> None:
        self._url = libpq_url(store.engine)
        self._store = store
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        # Deployments being fetched, and those notified again meanwhile (fetched once more).
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-listener")

    async def stop(self) -> None:
        for task in list(self._fetching.values()):
            task.cancel()
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
                            self._heard(deployment_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the connection died, or the database is down
                log.warning("listening for events: %s; again in %.1fs", err, delay)
            self._hub.listening = False
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def _heard(self, deployment_id: str) -> None:
        """Another process wrote events of ``deployment_id``: fetch them for the watchers
        here (one fetch at a time per deployment; a notification meanwhile fetches again)."""
        if self._hub.remote_after(deployment_id) is None:
            return
        if deployment_id in self._fetching:
            self._again.add(deployment_id)
            return
        self._fetching[deployment_id] = asyncio.create_task(
            self._fetch(deployment_id), name=f"fetch-{deployment_id}"
        )

    async def _fetch(self, deployment_id: str) -> None:
        try:
            while True:
                self._again.discard(deployment_id)
                after = self._hub.remote_after(deployment_id)
                if after is None:
                    return
                events = await self._store.events_after(deployment_id, after, FETCH_LIMIT)
                current = await self._store.get(deployment_id)
                self._hub.deliver(deployment_id, events, current)
                if deployment_id not in self._again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the watchers read the database themselves
            log.warning("fetching events of %s: %s", deployment_id, err)
            self._hub.poke(deployment_id)
        finally:
            self._fetching.pop(deployment_id, None)
