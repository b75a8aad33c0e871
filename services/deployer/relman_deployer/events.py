"""Deployment events: durable first, then fanned out to live watchers; Watch = replay + follow.

Every event is written to the database *before* any watcher sees it, by one writer task that
takes whatever has queued up, from any number of deployments, and writes it in one transaction
(200 deployments starting at once make a few large transactions, not thousands of small ones).

A watcher subscribes *before* it replays from the database and drops what it has already sent
(by ``seq``), so an event written while it replays reaches it exactly once: either it was
committed before the replay read it, or it is published (after its commit) to the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.model import Deployment, DeploymentEvent
from relman_deployer.store.repository import DeploymentStore, group_by_deployment

log = logging.getLogger("relman.deployer.events")

MAX_BATCH = 2000
REPLAY_PAGE = 1000
SUBSCRIPTION_BUFFER = 10_000
# How often a watcher looks at the database when no live event arrives: often when the
# deployment runs in another Deployer instance, rarely (as a safety net) when it runs here.
REMOTE_POLL_SECONDS = 0.25
LOCAL_POLL_SECONDS = 2.0


class Subscription:
    """Live events of one deployment for one watcher. ``None`` in the queue: look at the DB."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.queue: asyncio.Queue[Sequence[DeploymentEvent] | None] = asyncio.Queue(
            SUBSCRIPTION_BUFFER
        )

    def offer(self, item: Sequence[DeploymentEvent] | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A slow watcher: drop what it has not read; it replays from the database instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    """In-memory fan-out of committed events to the watchers in this process."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._live: set[str] = set()

    def subscribe(self, deployment_id: str) -> Subscription:
        sub = Subscription(deployment_id)
        self._subs.setdefault(deployment_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.deployment_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.deployment_id]

    def open(self, deployment_id: str) -> None:
        """The deployment runs in this process from now on: its events are published here."""
        self._live.add(deployment_id)

    def is_live(self, deployment_id: str) -> bool:
        return deployment_id in self._live

    def publish(self, deployment_id: str, events: Sequence[DeploymentEvent]) -> None:
        for sub in self._subs.get(deployment_id, ()):
            sub.offer(events)

    def close(self, deployment_id: str) -> None:
        """The deployment ended, or stopped running here: watchers look at the database."""
        self._live.discard(deployment_id)
        for sub in self._subs.get(deployment_id, ()):
            sub.offer(None)


class EventLog:
    """The single writer of deployment events: batches, writes, then publishes."""

    def __init__(self, store: DeploymentStore, hub: EventHub) -> None:
        self._store = store
        self._hub = hub
        self._queue: asyncio.Queue[DeploymentEvent | asyncio.Future[None]] = asyncio.Queue()
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

    def append(self, event: DeploymentEvent) -> None:
        """Queue ``event`` for writing; watchers see it once it is durable."""
        self._queue.put_nowait(event)

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
            events = [item for item in batch if isinstance(item, DeploymentEvent)]
            if events:
                written = await self._write(events)
                for deployment_id, group in group_by_deployment(written).items():
                    self._hub.publish(deployment_id, group)
            for item in batch:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)

    async def _write(self, events: list[DeploymentEvent]) -> list[DeploymentEvent]:
        """Write ``events``, retrying while the database is unavailable; what was written."""
        delay = 0.1
        while True:
            try:
                await self._store.append_events(events)
                return events
            except IntegrityError:
                return await self._write_each_deployment(events)
            except Exception:
                log.exception("writing %d deployment events failed; retrying", len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_each_deployment(self, events: list[DeploymentEvent]) -> list[DeploymentEvent]:
        # A sequence number is taken: some other instance writes that deployment's log now.
        # Keep the other deployments' events; drop that deployment's (its owner has them).
        written: list[DeploymentEvent] = []
        for deployment_id, group in group_by_deployment(events).items():
            try:
                await self._store.append_events(group)
                written.extend(group)
            except IntegrityError:
                log.error(
                    "deployment %s: events %d-%d already written by another instance; dropped",
                    deployment_id,
                    group[0].seq,
                    group[-1].seq,
                )
        return written


async def watch(
    store: DeploymentStore, hub: EventHub, deployment_id: str, after_seq: int
) -> AsyncIterator[Deployment | DeploymentEvent]:
    """The deployment, its events after ``after_seq`` (each once, in order), live events until
    it ends, then the deployment again with its outcome."""
    sub = hub.subscribe(deployment_id)
    try:
        deployment = await store.get(deployment_id)
        yield deployment
        last = after_seq
        while True:
            # Replay whatever is durable beyond `last`.
            while True:
                page = await store.events_after(deployment_id, last, REPLAY_PAGE)
                for event in page:
                    yield event
                    last = event.seq
                if len(page) < REPLAY_PAGE:
                    break
            if not deployment.running:
                # Ended before the replay read the log: the log is complete.
                yield deployment
                return
            # Follow live events until something needs a look at the database.
            poll = LOCAL_POLL_SECONDS if hub.is_live(deployment_id) else REMOTE_POLL_SECONDS
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout=poll)
                except TimeoutError:
                    break
                if item is None:
                    break
                in_order = True
                for event in item:
                    if event.seq <= last:
                        continue  # already replayed
                    if event.seq != last + 1:
                        in_order = False  # missed some: the database has them
                        break
                    yield event
                    last = event.seq
                if not in_order:
                    break
            deployment = await store.get(deployment_id)
    finally:
        hub.unsubscribe(sub)
