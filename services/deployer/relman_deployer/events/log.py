"""The single writer of deployment events: durable first, then published.

Every event is written to the database *before* any watcher sees it, by one writer task that
takes whatever has queued up, from any number of deployments, and writes it in one transaction
(200 deployments starting at once make a few large transactions, not thousands of small ones).
A StatusChange event travels with the phase it enters (:class:`PhaseChange`): both are written
in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relman_deployer.domain.model import DeploymentEvent, PhaseChange
from relman_deployer.events.hub import EventHub
from relman_deployer.store.repository import DeploymentStore, group_by_deployment

log = logging.getLogger("relman.deployer.events")

MAX_BATCH = 2000

Entry = tuple[DeploymentEvent, PhaseChange | None]


class EventLog:
    """The single writer of deployment events: batches, writes, then publishes."""

    def __init__(self, store: DeploymentStore, hub: EventHub) -> None:
        self._store = store
        self._hub = hub
        self._queue: asyncio.Queue[Entry | asyncio.Future[None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-log")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=10)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def append(self, event: DeploymentEvent, phase: PhaseChange | None = None) -> None:
        """Queue ``event`` (and the phase it announces) for writing; watchers see it once it
        is durable."""
        self._queue.put_nowait((event, phase))

    async def flush(self) -> None:
        """Wait until every event appended so far is durable and published."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(done)
        await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            entries = [item for item in batch if isinstance(item, tuple)]
            if entries:
                written = await self._write(entries)
                for deployment_id, group in group_by_deployment(written).items():
                    self._hub.publish(deployment_id, group)
            for item in batch:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)

    async def _write(self, entries: list[Entry]) -> list[DeploymentEvent]:
        """Write ``entries``, retrying while the database is unavailable; the events written."""
        events = [event for event, _ in entries]
        phases = [phase for _, phase in entries if phase is not None]
        delay = 0.1
        while True:
            try:
                return await self._store.append_events(events, phases)
            except Exception:
                log.exception("writing %d deployment events failed; retrying", len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
