"""Live fan-out of committed events to the watchers in this process.

A deployment running in this process also keeps its published events in memory (up to
``RECENT_EVENTS``). A watcher of it takes, in the same step as it subscribes (no ``await`` in
between), the events published so far: those are its replay, and everything published later
reaches its subscription, so 1,000 watchers opening at once cost no database reads (the hub
also keeps each live deployment as stored after its last published events, which a watcher
sends first). The last
``ENDED_KEPT`` deployments that ended here keep their whole log (and their final state) in
memory a while longer: watchers that arrive just after the end read nothing from the
database either.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from relman_deployer.domain.model import Deployment, DeploymentEvent, PhaseChange

SUBSCRIPTION_BUFFER = 10_000
# Published events a live deployment keeps in memory for the replays of new watchers.
RECENT_EVENTS = 10_000
# Deployments that ended lately whose whole log stays in memory for late watchers.
ENDED_KEPT = 64
# How often the hub wakes the watchers that waited their whole poll interval for nothing.
POLL_TICK_SECONDS = 0.05

# What a subscription's queue holds: published events; ``None``: look at the database; a
# Deployment: it ended this way, after the events published before (all durable).
Item = Sequence[DeploymentEvent] | Deployment | None


class Subscription:
    """Live events of one deployment for one watcher."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.queue: asyncio.Queue[Item] = asyncio.Queue(SUBSCRIPTION_BUFFER)
        # The last seq the watcher had when it last waited (see EventHub.remote_after).
        self.last = 0

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
        # Live deployments started here -> as stored once their published events were.
        self._stored: dict[str, Deployment] = {}
        self._recent_max = recent_events
        # Deployments that ended here lately, with their whole log (neither changes any more).
        self._ended: OrderedDict[str, tuple[Deployment, list[DeploymentEvent]]] = OrderedDict()
        # Subscriptions waiting in next() -> the loop time by which they look at the database.
        self._waiting: dict[Subscription, float] = {}
        self._ticker: asyncio.Task[None] | None = None
        # True while this process hears of events other processes write (PostgreSQL LISTEN,
        # see .listen): then watchers of those need not poll the database often.
        self.listening = False

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

    async def next(self, sub: Subscription, poll: float) -> Item:
        """The next item of ``sub``; None (look at the database) when nothing came for about
        ``poll`` seconds (up to POLL_TICK_SECONDS more). A wait arms no timer of its own: one
        task wakes the subscriptions that waited too long (1,000 watchers of a deployment
        used to arm and cancel 1,000 timers for every event published)."""
        if not sub.queue.empty():
            return sub.queue.get_nowait()
        loop = asyncio.get_running_loop()
        self._waiting[sub] = loop.time() + poll
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._wake_idle(), name="watch-polls")
        try:
            return await sub.queue.get()
        finally:
            self._waiting.pop(sub, None)

    async def _wake_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            await asyncio.sleep(POLL_TICK_SECONDS)
            now = loop.time()
            for sub, deadline in list(self._waiting.items()):
                if deadline <= now:
                    del self._waiting[sub]
                    sub.offer(None)

    def poke(self, deployment_id: str) -> None:
        """Another process wrote events of ``deployment_id``: its watchers here look at the
        database (those of a deployment live here get its events published already)."""
        if deployment_id in self._recent:
            return
        for sub in self._subs.get(deployment_id, ()):
            if sub.queue.empty():  # one look covers every write so far
                sub.offer(None)

    def remote_after(self, deployment_id: str) -> int | None:
        """For a deployment another process runs: the last seq every watcher here has (what
        to fetch after); None when nobody here watches it, or it runs here."""
        subs = self._subs.get(deployment_id)
        if not subs or deployment_id in self._recent:
            return None
        return min(sub.last for sub in subs)

    def deliver(
        self, deployment_id: str, events: Sequence[DeploymentEvent], current: Deployment
    ) -> None:
        """Events of a deployment another process runs, read once for every watcher here
        (consecutive, from some watcher's last seq on), and the deployment as read after
        them: its end, when it ended. Each watcher skips what it has, and reads the database
        itself if they do not follow on from what it has."""
        for sub in self._subs.get(deployment_id, ()):
            if events:
                sub.offer(events)
            if not current.running:
                sub.offer(current)

    def poke_all(self) -> None:
        """Every watcher of a deployment not live here looks at the database."""
        for deployment_id in list(self._subs):
            self.poke(deployment_id)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.deployment_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.deployment_id]

    def open(
        self, deployment_id: str, last_seq: int = 0, started: Deployment | None = None
    ) -> None:
        """The deployment runs in this process from now on: its events are published here.

        ``last_seq``: its events written before (by an instance it is resumed from); those are
        not in memory, so a watcher asking for them replays from the database. ``started``:
        the deployment as stored when it started here (``last_seq`` 0).
        """
        self._recent[deployment_id] = [] if last_seq == 0 else None
        if started is not None and last_seq == 0:
            self._stored[deployment_id] = started

    def stored(self, deployment_id: str) -> Deployment | None:
        """A live deployment started here, as stored after the events published so far (those
        :meth:`subscribe_with_recent` returns); None when the hub does not know it."""
        return self._stored.get(deployment_id)

    def is_live(self, deployment_id: str) -> bool:
        return deployment_id in self._recent

    def publish(
        self,
        deployment_id: str,
        events: Sequence[DeploymentEvent],
        change: PhaseChange | None = None,
    ) -> None:
        """Committed ``events`` of the deployment (with the last phase ``change`` written with
        them, if any): to its watchers."""
        self._remember(deployment_id, events)
        stored = self._stored.get(deployment_id)
        if stored is not None and events:
            stored = replace(stored, last_seq=max(stored.last_seq, events[-1].seq))
            if change is not None:
                stored = replace(stored, phase=change.phase, reason=change.reason)
            self._stored[deployment_id] = stored
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
        self._stored.pop(deployment_id, None)
        item = ended if ended is not None and not ended.running else None
        if item is not None and recent is not None and _whole_log(recent, item.last_seq):
            self._ended[deployment_id] = (item, recent)
            if len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        for sub in self._subs.get(deployment_id, ()):
            sub.offer(item)


def _whole_log(events: list[DeploymentEvent], last_seq: int) -> bool:
    """True when ``events`` (consecutive) are events 1..``last_seq``."""
    if not events:
        return last_seq == 0
    return events[0].seq == 1 and events[-1].seq == last_seq == len(events)
