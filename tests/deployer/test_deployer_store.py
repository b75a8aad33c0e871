"""The Deployer's repository on SQLite and PostgreSQL: leases, event log, orphans, paging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from relman_common.db import DbExecutor, make_engine
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_deployer.domain.model import Deployment, DeploymentEvent, Outcome, Phase
from relman_deployer.store.repository import DeploymentStore, migrate
from sqlalchemy.exc import IntegrityError

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=15)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[DeploymentStore]:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    executor = DbExecutor(workers=8)
    yield DeploymentStore(engine, executor)
    executor.shutdown()
    engine.dispose()


def deployment(
    n: int, app: str = "myapp", started: datetime = T0, actor: str = "alice"
) -> Deployment:
    return Deployment(
        id="D" + chr(ord("A") + n // 26) + chr(ord("A") + n % 26) + "AAAAAAAA",
        app=app,
        release_id="RAAAAAAAAAA",
        previous_release_id="",
        actor=actor,
        started=started,
    )


def events(d: Deployment, seqs: range) -> list[DeploymentEvent]:
    return [
        DeploymentEvent(d.id, s, T0, "system/k8s/web", "ScalingReplicaSet", f"e{s}") for s in seqs
    ]


async def test_one_running_deployment_per_app_and_the_refusal_names_it(
    store: DeploymentStore,
) -> None:
    first = deployment(1)
    await store.start(first, "owner-a", T0 + TTL)
    with pytest.raises(FailedPrecondition) as err:
        await store.start(deployment(2, actor="bob"), "owner-b", T0 + TTL)
    assert str(err.value) == (
        f"app is currently updating (deployment {first.id}, started by alice "
        "at 2030-01-01T00:00:00Z)"
    )
    # Another app is not affected.
    await store.start(deployment(3, app="other"), "owner-b", T0 + TTL)
    lease = await store.lease_of("myapp")
    assert lease is not None and (lease["owner"], lease["deployment_id"]) == ("owner-a", first.id)


async def test_concurrent_starts_of_one_app_let_exactly_one_through(
    store: DeploymentStore,
) -> None:
    # Separate thread pools, so the transactions really run at the same time.
    stores = [DeploymentStore(store.engine, DbExecutor(workers=1)) for _ in range(8)]
    results = await asyncio.gather(
        *(s.start(deployment(i), f"owner-{i}", T0 + TTL) for i, s in enumerate(stores)),
        return_exceptions=True,
    )
    started = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, FailedPrecondition)]
    assert (len(started), len(refused)) == (1, 7), results
    running = await store.running_of_app("myapp")
    assert running is not None
    assert all(running.id in str(r) for r in refused)


async def test_finish_frees_the_lease_and_the_app_can_deploy_again(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    ended = await store.finish(d.id, Outcome.SUCCEEDED, "", T0 + timedelta(seconds=5))
    assert (ended.outcome, ended.ended) == (Outcome.SUCCEEDED, T0 + timedelta(seconds=5))
    assert await store.lease_of("myapp") is None
    await store.start(deployment(2), "owner-b", T0 + TTL)


async def test_events_get_written_in_batches_across_deployments_and_advance_last_seq(
    store: DeploymentStore,
) -> None:
    a, b = deployment(1), deployment(2, app="other")
    await store.start(a, "o", T0 + TTL)
    await store.start(b, "o", T0 + TTL)
    await store.append_events(events(a, range(1, 4)) + events(b, range(1, 3)))
    await store.append_events(events(a, range(4, 6)))
    assert [e.seq for e in await store.events_after(a.id, 0)] == [1, 2, 3, 4, 5]
    assert [e.message for e in await store.events_after(a.id, 3)] == ["e4", "e5"]
    assert [e.seq for e in await store.events_after(a.id, 1, limit=2)] == [2, 3]
    assert ((await store.get(a.id)).last_seq, (await store.get(b.id)).last_seq) == (5, 2)


async def test_an_event_sequence_number_is_never_written_twice(store: DeploymentStore) -> None:
    d = deployment(1)
    await store.start(d, "o", T0 + TTL)
    await store.append_events(events(d, range(1, 3)))
    with pytest.raises(IntegrityError):
        await store.append_events(events(d, range(2, 4)))
    assert [e.seq for e in await store.events_after(d.id, 0)] == [1, 2]


async def test_renewal_fails_once_another_owner_holds_the_lease(store: DeploymentStore) -> None:
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    assert await store.renew("owner-a", [d.id], T0 + 2 * TTL) == {d.id: ""}
    assert await store.renew("owner-a", [], T0 + 2 * TTL) is None
    now = T0 + 3 * TTL  # owner-a stopped renewing: the lease expired
    assert [o.id for o in await store.orphans(now)] == [d.id]
    assert await store.claim(d.id, "owner-b", now, now + TTL) is not None
    assert await store.claim(d.id, "owner-c", now, now + TTL) is None  # taken already
    assert await store.renew("owner-a", [d.id], now + TTL) == {}  # lost
    lease = await store.lease_of("myapp")
    assert lease is not None and lease["owner"] == "owner-b"
    assert await store.orphans(now) == []


async def test_a_running_deployment_without_lease_is_an_orphan_and_blocks_the_app(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    assert await store.hand_off("owner-a", T0) == 1  # graceful shutdown
    assert [o.id for o in await store.orphans(T0)] == [d.id]
    with pytest.raises(FailedPrecondition, match=d.id):
        await store.start(deployment(2), "owner-b", T0 + TTL)
    assert await store.claim(d.id, "owner-b", T0, T0 + TTL) is not None


async def test_cancel_sets_a_flag_the_owner_reads_on_renewal(store: DeploymentStore) -> None:
    with pytest.raises(FailedPrecondition, match="no running deployment"):
        await store.request_cancel("myapp", "bob")
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    assert (await store.request_cancel("myapp", "bob")).cancelled_by == "bob"
    assert await store.renew("owner-a", [d.id], T0 + TTL) == {d.id: "bob"}
    await store.set_phase(d.id, Phase.ROLLING_BACK, "cancelled by bob")
    with pytest.raises(FailedPrecondition, match="already rolling back"):
        await store.request_cancel("myapp", "carol")


async def test_list_is_newest_first_with_keyset_pages(store: DeploymentStore) -> None:
    made = []
    for i in range(7):
        d = deployment(i, started=T0 + timedelta(seconds=i // 2))  # ties on started
        await store.start(d, "o", T0 + TTL)
        await store.finish(d.id, Outcome.SUCCEEDED, "", T0)
        made.append(d)
    await store.start(deployment(30, app="other"), "o", T0 + TTL)
    seen, token = [], ""
    while True:
        page, token = await store.list_deployments("myapp", 3, token)
        seen += [d.id for d in page]
        if not token:
            break
    expected = [d.id for d in sorted(made, key=lambda d: (d.started, d.id), reverse=True)]
    assert seen == expected
    everything, _ = await store.list_deployments("", 100)
    assert len(everything) == 8
    with pytest.raises(InvalidArgument):
        await store.list_deployments("myapp", 3, "not a token!")
