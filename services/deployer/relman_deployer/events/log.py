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
        # Deployments with events appended but not yet written -> the last such seq, and who
        # waits for them (durable()).
        self._unwritten: dict[str, int] = {}
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

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
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RuntimeError("the event log stopped"))
        self._waiting.clear()

    def append(self, event: DeploymentEvent, phase: PhaseChange | None = None) -> None:
        """Queue ``event`` (and the phase it announces) for writing; watchers see it once it
        is durable."""
        self._queue.put_nowait((event, phase))
        self._unwritten[event.deployment_id] = event.seq

    async def flush(self) -> None:
        """Wait until every event appended so far is durable and published."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(done)
        await done

    async def durable(self, deployment_id: str) -> None:
        """Wait until every event of ``deployment_id`` appended so far is durable and published
        (or dropped: another instance wrote those seqs). Unlike :meth:`flush`, it does not
        wait for other deployments' events, nor for a batch after the one holding its own."""
        if deployment_id not in self._unwritten:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(deployment_id, []).append(waiter)
        await waiter

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            entries = [item for item in batch if isinstance(item, tuple)]
            if entries:
                written = await self._write(entries)
                # Each deployment's last phase change written in the batch.
                changes = {p.deployment_id: p for _, p in entries if p is not None}
                for deployment_id, group in group_by_deployment(written).items():
                    self._hub.publish(deployment_id, group, changes.get(deployment_id))
                self._handled(entries)
            for item in batch:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)

    def _handled(self, entries: list[Entry]) -> None:
        """``entries`` are written (or dropped): wake who waits for their deployments, unless
        more of a deployment's events were appended meanwhile."""
        last: dict[str, int] = {}
        for event, _ in entries:
            last[event.deployment_id] = event.seq
        for deployment_id, seq in last.items():
            if self._unwritten.get(deployment_id, 0) > seq:
                continue  # its later events are in the queue: waiters wait for those
            self._unwritten.pop(deployment_id, None)
            for waiter in self._waiting.pop(deployment_id, ()):
                if not waiter.done():
                    waiter.set_result(None)

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
