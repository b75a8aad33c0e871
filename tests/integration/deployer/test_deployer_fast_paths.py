"""The Deployer's fast paths over its store, on SQLite and PostgreSQL: write groups that still
let one promote start, watchers replayed from memory as the store has the events, waiting for
events to be durable. (The fast paths that need no store are in
tests/unit/deployer/test_deployer_fast_paths.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from relman_common.db import DbExecutor, make_engine
from relman_common.errors import FailedPrecondition
from relman_common.lifecycle import Phase
from relman_deployer.domain.model import Deployment, DeploymentEvent, Outcome, PhaseChange
from relman_deployer.events import EventHub, EventLog, watch
from relman_deployer.store.repository import DeploymentStore, migrate
from sqlalchemy import text
from support.deployer import T0, TTL, deployment, events, eventually


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[DeploymentStore]:
    engine = make_engine(db_url)
    migrate(engine)
    executor = DbExecutor(workers=8)
    yield DeploymentStore(engine, executor)
    executor.shutdown()
    engine.dispose()


async def test_two_promotes_of_one_app_in_one_write_group_still_let_only_one_start(
    store: DeploymentStore,
) -> None:
    outcomes = await asyncio.gather(
        *(store.start(deployment(n), "owner", T0 + TTL) for n in range(10)),
        return_exceptions=True,
    )
    assert sum(1 for o in outcomes if o is None) == 1
    assert all(isinstance(o, FailedPrecondition) for o in outcomes if o is not None)
    running = await store.running_of_app("myapp")
    assert running is not None


async def test_a_watcher_of_a_live_deployment_gets_every_event_once_replayed_from_memory(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner", T0 + TTL)
    hub = EventHub()
    log = EventLog(store, hub)
    log.start()
    hub.open(d.id)
    try:
        for e in events(d, range(1, 6)):
            log.append(e)
        await log.flush()
        # Drop the events from the database: a replay that read it would miss them.
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM deployment_events"))
        seen: list[Deployment | DeploymentEvent] = []

        async def follow() -> None:
            async for item in watch(store, hub, d.id, 2):
                seen.append(item)

        watcher = asyncio.create_task(follow())
        await eventually(lambda: len(seen) >= 4)  # the deployment and events 3..5, from memory
        for e in events(d, range(6, 9)):
            log.append(e)
        await log.flush()
        ended = await store.finish(d.id, Outcome.SUCCEEDED, "", T0)
        hub.close(d.id, ended)
        await asyncio.wait_for(watcher, 10)
    finally:
        await log.stop()
    assert [x.seq for x in seen if isinstance(x, DeploymentEvent)] == [3, 4, 5, 6, 7, 8]
    last = seen[-1]
    assert isinstance(last, Deployment) and last.outcome is Outcome.SUCCEEDED


async def test_a_late_watcher_of_a_deployment_that_just_ended_here_gets_its_log_from_memory(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner", T0 + TTL)
    hub = EventHub()
    log = EventLog(store, hub)
    log.start()
    hub.open(d.id)
    try:
        for e in events(d, range(1, 6)):
            log.append(e)
        await log.flush()
        ended = await store.finish(d.id, Outcome.ROLLED_BACK, "pods crash", T0)
        hub.close(d.id, ended)
    finally:
        await log.stop()
    with store.engine.begin() as conn:  # a replay that read the database would find nothing
        conn.execute(text("DELETE FROM deployment_events"))
    got = [item async for item in watch(store, hub, d.id, 2)]
    assert got[0] == ended and got[-1] == ended
    assert [x.seq for x in got[1:-1] if isinstance(x, DeploymentEvent)] == [3, 4, 5]
    assert [item async for item in watch(store, hub, d.id, 9)] == [ended, ended]


async def test_a_watcher_of_a_deployment_live_here_starts_from_memory_as_it_is_stored(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner", T0 + TTL)
    hub = EventHub()
    log = EventLog(store, hub)
    log.start()
    hub.open(d.id, d.last_seq, d)
    try:
        first, second = events(d, range(1, 3))
        log.append(first)
        log.append(second, PhaseChange(d.id, Phase.ROLLING_BACK, "pods crash"))
        await log.flush()
        stored = await store.get(d.id)
        assert hub.stored(d.id) == stored  # last_seq and reason as the database has them
        with store.engine.begin() as conn:  # what a watcher reading the database would see
            conn.execute(text("UPDATE deployments SET reason = 'read from the database'"))
        seen: list[Deployment | DeploymentEvent] = []

        async def follow() -> None:
            async for item in watch(store, hub, d.id, 0):
                seen.append(item)

        watcher = asyncio.create_task(follow())
        await eventually(lambda: len(seen) >= 3)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        await log.stop()
    assert seen[0] == stored
    assert [x.seq for x in seen[1:] if isinstance(x, DeploymentEvent)] == [1, 2]
    hub.close(d.id)
    assert hub.stored(d.id) is None


async def test_waiting_for_one_deployments_events_ends_once_they_are_durable_and_published(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner", T0 + TTL)
    hub = EventHub()
    log = EventLog(store, hub)
    hub.open(d.id)
    await asyncio.wait_for(log.durable(d.id), 5)  # nothing appended: nothing to wait for
    for e in events(d, range(1, 4)):
        log.append(e)
    waiter = asyncio.create_task(log.durable(d.id))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # the writer has not run yet
    log.start()
    try:
        await asyncio.wait_for(waiter, 10)
        assert [e.seq for e in await store.events_after(d.id, 0)] == [1, 2, 3]
        assert [e.seq for e in hub.subscribe_with_recent(d.id, 0)[1] or []] == [1, 2, 3]
    finally:
        await log.stop()
