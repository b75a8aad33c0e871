"""Deployment events: durable first, then fanned out to live watchers; Watch = replay + follow.

Every event is written to the database *before* any watcher sees it, by one writer task that
takes whatever has queued up, from any number of deployments, and writes it in one transaction
(200 deployments starting at once make a few large transactions, not thousands of small ones).

A watcher subscribes *before* it replays from the database and drops what it has already sent
(by ``seq``), so an event written while it replays reaches it exactly once: either it was
committed before the replay read it, or it is published (after its commit) to the subscription.

A deployment running in this process also keeps its published events in memory (up to
``RECENT_EVENTS``). A watcher of it takes, in the same step as it subscribes (no ``await`` in
between), the events published so far: those are the replay, and everything published later
reaches its subscription, so 1,000 watchers opening at once cost no database reads for the
replay. When the memory does not reach back to what a watcher asks for (a resumed deployment,
an old ``after_seq``), the replay reads the database as above. The last ``ENDED_KEPT``
deployments that ended here keep their whole log (and their final state) in memory a while
longer: watchers that arrive just after the end read nothing from the database either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.model import Deployment, DeploymentEvent
from relman_deployer.store.repository import DeploymentStore, group_by_deployment

log = logging.getLogger("relman.deployer.events")

MAX_BATCH = 2000
REPLAY_PAGE = 1000
SUBSCRIPTION_BUFFER = 10_000
# Published events a live deployment keeps in memory for the replays of new watchers.
RECENT_EVENTS = 10_000
# Deployments that ended lately whose whole log stays in memory for late watchers.
ENDED_KEPT = 64
# How often a watcher looks at the database when no live event arrives: often when the
# deployment runs in another Deployer instance, rarely (as a safety net) when it runs here.
REMOTE_POLL_SECONDS = 0.25
LOCAL_POLL_SECONDS = 2.0


# What a subscription's queue holds: published events; ``None``: look at the database; a
# Deployment: it ended this way, after the events published before (all durable).
Item = Sequence[DeploymentEvent] | Deployment | None


class Subscription:
    """Live events of one deployment for one watcher."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.queue: asyncio.Queue[Item] = asyncio.Queue(SUBSCRIPTION_BUFFER)

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A slow watcher: drop what it has not read; it replays from the database instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    """In-memory fan-out of committed events to the watchers in this process."""

    def __init__(self, recent_events: int = RECENT_EVENTS) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        # Live deployments -> their published events, consecutive by seq (None: unknown).
        self._recent: dict[str, list[DeploymentEvent] | None] = {}
        self._recent_max = recent_events
        # Deployments that ended here lately, with their whole log (neither changes any more).
        self._ended: OrderedDict[str, tuple[Deployment, list[DeploymentEvent]]] = OrderedDict()

    def subscribe(self, deployment_id: str) -> Subscription:
        sub = Subscription(deployment_id)
        self._subs.setdefault(deployment_id, set()).add(sub)
        return sub

    def subscribe_with_recent(
        self, deployment_id: str, after_seq: int
    ) -> tuple[Subscription, list[DeploymentEvent] | None]:
        """Subscribe, and the published events after ``after_seq`` when memory holds every one
        of them (else None: replay from the database). Together they miss nothing: an event is
        either published already (in the list) or will be (to the subscription)."""
        sub = self.subscribe(deployment_id)
        recent = self._recent.get(deployment_id)
        if recent is None:
            return sub, None
        if not recent:
            return sub, None if after_seq > 0 else []
        first = recent[0].seq
        if after_seq + 1 < first:
            return sub, None  # older events were not kept (or were published elsewhere)
        return sub, recent[max(after_seq + 1 - first, 0) :]

    def ended_log(
        self, deployment_id: str, after_seq: int
    ) -> tuple[Deployment, list[DeploymentEvent]] | None:
        """A deployment that ended here lately, as stored then, and its events after
        ``after_seq``; None when it is not kept in memory."""
        kept = self._ended.get(deployment_id)
        if kept is None:
            return None
        ended, events = kept
        return ended, events[max(after_seq, 0) :]  # events[i].seq == i + 1

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.deployment_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.deployment_id]

    def open(self, deployment_id: str, last_seq: int = 0) -> None:
        """The deployment runs in this process from now on: its events are published here.

        ``last_seq``: its events written before (by an instance it is resumed from); those are
        not in memory, so a watcher asking for them replays from the database.
        """
        self._recent[deployment_id] = [] if last_seq == 0 else None

    def is_live(self, deployment_id: str) -> bool:
        return deployment_id in self._recent

    def publish(self, deployment_id: str, events: Sequence[DeploymentEvent]) -> None:
        self._remember(deployment_id, events)
        for sub in self._subs.get(deployment_id, ()):
            sub.offer(events)

    def _remember(self, deployment_id: str, events: Sequence[DeploymentEvent]) -> None:
        if deployment_id not in self._recent or not events:
            return
        recent = self._recent[deployment_id]
        if recent is None:
            recent = []  # a resumed deployment: keep what is published from now on
        elif recent and events[0].seq != recent[-1].seq + 1:
            recent = []  # a gap (events written by another instance): start again here
        recent.extend(events)
        if len(recent) > self._recent_max:
            del recent[: len(recent) - self._recent_max]
        self._recent[deployment_id] = recent

    def close(self, deployment_id: str, ended: Deployment | None = None) -> None:
        """The deployment ended (``ended``: as stored when it ended, after every event of it
        was durable and published), or stopped running here: watchers look at the database."""
        recent = self._recent.pop(deployment_id, None)
        item = ended if ended is not None and not ended.running else None
        if item is not None and recent is not None and _whole_log(recent, item.last_seq):
            self._ended[deployment_id] = (item, recent)
            if len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        for sub in self._subs.get(deployment_id, ()):
            sub.offer(item)


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


def _whole_log(events: list[DeploymentEvent], last_seq: int) -> bool:
    """True when ``events`` (consecutive) are events 1..``last_seq``."""
    if not events:
        return last_seq == 0
    return events[0].seq == 1 and events[-1].seq == last_seq == len(events)


async def watch(
    store: DeploymentStore, hub: EventHub, deployment_id: str, after_seq: int
) -> AsyncIterator[Deployment | DeploymentEvent]:
    """The deployment, its events after ``after_seq`` (each once, in order), live events until
    it ends, then the deployment again with its outcome."""
    kept = hub.ended_log(deployment_id, after_seq)
    if kept is not None:  # ended here lately: the whole log is in memory
        ended, events = kept
        yield ended
        for event in events:
            yield event
        yield ended
        return
    sub, recent = hub.subscribe_with_recent(deployment_id, after_seq)
    try:
        deployment = await store.get(deployment_id)
        yield deployment
        last = after_seq
        while True:
            if recent is not None:
                # Everything published before the subscription; the subscription has the rest
                # (and, if the deployment has ended since, its end).
                for event in recent:
                    yield event
                    last = event.seq
                recent = None  # from now on, the database is the complete record
            else:
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
                    async with asyncio.timeout(poll):
                        item = await sub.queue.get()
                except TimeoutError:
                    break
                if item is None:
                    break
                if isinstance(item, Deployment):
                    if item.last_seq == last:  # every event sent: no need to ask the database
                        yield item
                        return
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
