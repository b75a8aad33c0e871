"""Watch: a deployment's events after ``after_seq`` (each once, in order), then live ones
until it ends.

A watcher subscribes *before* it replays from the database and drops what it has already sent
(by ``seq``), so an event written while it replays reaches it exactly once: either it was
committed before the replay read it, or it is published (after its commit) to the
subscription.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from relman_deployer.domain.model import Deployment, DeploymentEvent
from relman_deployer.events.hub import EventHub
from relman_deployer.store.repository import DeploymentStore

REPLAY_PAGE = 1000
# How often a watcher looks at the database when no live event arrives: rarely (as a safety
# net) when the deployment runs here or this process hears of other processes' writes
# (PostgreSQL LISTEN, see .listen), often when it runs in another Deployer unheard.
REMOTE_POLL_SECONDS = 0.25
LOCAL_POLL_SECONDS = 2.0


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
        # Live here: as stored after the events in `recent`, without reading the database.
        known = hub.stored(deployment_id) if recent is not None else None
        deployment = known if known is not None else await store.get(deployment_id)
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
            heard = hub.is_live(deployment_id) or hub.listening
            poll = LOCAL_POLL_SECONDS if heard else REMOTE_POLL_SECONDS
            while True:
                sub.last = last  # what it has, for a fetch of what another process wrote
                item = await hub.next(sub, poll)
                if item is None:  # nothing for a while, or told to: look at the database
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
