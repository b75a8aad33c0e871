"""The Deployer's repository on SQLite and PostgreSQL: leases, event log, orphans, paging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from relman_common.clock import as_utc
from relman_common.db import DbExecutor, make_engine
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.lifecycle import Outcome, Phase
from relman_deployer.domain.model import (
    APP_SOURCE,
    STATUS_CHANGE,
    Deployment,
    DeploymentEvent,
    PhaseChange,
)
from relman_deployer.store.repository import DeploymentStore, migrate
from support.deployer import T0, TTL, deployment, events


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[DeploymentStore]:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    executor = DbExecutor(workers=8)
    yield DeploymentStore(engine, executor)
    executor.shutdown()
    engine.dispose()


def status_event(d: Deployment, seq: int, message: str) -> DeploymentEvent:
    return DeploymentEvent(d.id, seq, T0, APP_SOURCE, STATUS_CHANGE, message)


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


async def test_seqs_another_instance_wrote_drop_only_that_deployments_events_and_raise_nothing(
    store: DeploymentStore,
) -> None:
    """Another instance took ``a`` over and wrote its seq 2 already: this instance's batch
    still writes ``b``'s events and phase, drops ``a``'s (events and phase: they travel in one
    transaction), and no storage error reaches the event log."""
    a, b = deployment(1), deployment(2, app="other")
    await store.start(a, "o", T0 + TTL)
    await store.start(b, "o", T0 + TTL)
    await store.append_events(events(a, range(1, 3)))
    batch = [*events(a, range(2, 4)), status_event(b, 1, "Status: Running => Pending")]
    phases = [PhaseChange(a.id, Phase.UPDATING), PhaseChange(b.id, Phase.PENDING)]
    written = await store.append_events(batch, phases)
    assert [(e.deployment_id, e.seq) for e in written] == [(b.id, 1)]
    assert [e.message for e in await store.events_after(a.id, 0)] == ["e1", "e2"]
    after_a, after_b = await store.get(a.id), await store.get(b.id)
    assert (after_a.last_seq, after_a.phase) == (2, Phase.STARTING)
    assert (after_b.last_seq, after_b.phase) == (1, Phase.PENDING)
    # Alone in its batch, a taken seq is dropped just the same.
    assert await store.append_events(events(a, range(1, 2))) == []
    assert (await store.get(a.id)).last_seq == 2


async def test_a_phase_and_the_status_change_that_enters_it_are_written_together(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "o", T0 + TTL)
    assert (await store.get(d.id)).phase is Phase.STARTING
    first = status_event(d, 1, "Status: Running => Pending")
    assert await store.append_events([first], [PhaseChange(d.id, Phase.PENDING)]) == [first]
    row = await store.get(d.id)
    assert (row.phase, row.last_seq, row.reason) == (Phase.PENDING, 1, "")
    await store.append_events(events(d, range(2, 4)))
    rollback = status_event(d, 4, "Status: Updating => Rollback")
    change = PhaseChange(d.id, Phase.ROLLING_BACK, "no progress for 30s")
    await store.append_events([rollback], [change])
    row = await store.get(d.id)
    assert (row.phase, row.last_seq, row.reason) == (
        Phase.ROLLING_BACK,
        4,
        "no progress for 30s",
    )
    assert [e.message for e in await store.events_after(d.id, 0)][-1] == (
        "Status: Updating => Rollback"
    )
    # The event cannot be written (another instance wrote seq 4): neither is the phase.
    taken = status_event(d, 4, "Status: Rollback => Running")
    assert await store.append_events([taken], [PhaseChange(d.id, Phase.UPDATING)]) == []
    row = await store.get(d.id)
    assert (row.phase, row.last_seq) == (Phase.ROLLING_BACK, 4)


async def test_finish_writes_the_last_event_the_outcome_and_the_end_and_frees_the_lease(
    store: DeploymentStore,
) -> None:
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    await store.append_events(
        [status_event(d, 1, "Status: Running => Pending")], [PhaseChange(d.id, Phase.PENDING)]
    )
    await store.append_events(
        [status_event(d, 2, "Status: Pending => Updating")], [PhaseChange(d.id, Phase.UPDATING)]
    )
    last = status_event(d, 3, "Status: Updating => Running")
    ended_at = T0 + timedelta(seconds=9)
    ended = await store.finish(d.id, Outcome.SUCCEEDED, "", ended_at, [last])
    assert (ended.outcome, ended.phase, ended.last_seq, ended.ended) == (
        Outcome.SUCCEEDED,
        Phase.ENDED,
        3,
        ended_at,
    )
    assert await store.get(d.id) == ended
    assert (await store.events_after(d.id, 2)) == [last]
    assert await store.lease_of("myapp") is None
    assert await store.orphans(T0 + 10 * TTL) == []


async def test_finish_is_all_or_nothing(store: DeploymentStore) -> None:
    """When the last event cannot be written, the outcome is not written and the lease is
    kept: the deployment is still running for whoever resumes it. The refusal is the
    project's error, not the database driver's."""
    d = deployment(1)
    await store.start(d, "owner-a", T0 + TTL)
    await store.append_events(events(d, range(1, 3)))
    taken = status_event(d, 2, "Status: Updating => Running")  # another instance wrote seq 2
    with pytest.raises(FailedPrecondition, match="written by another instance"):
        await store.finish(d.id, Outcome.SUCCEEDED, "", T0, [taken])
    row = await store.get(d.id)
    assert (row.outcome, row.phase, row.last_seq, row.ended) == (
        Outcome.RUNNING,
        Phase.STARTING,
        2,
        None,
    )
    lease = await store.lease_of("myapp")
    assert lease is not None and lease["deployment_id"] == d.id
    assert [e.message for e in await store.events_after(d.id, 0)] == ["e1", "e2"]


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


async def test_renewal_extends_only_the_leases_of_the_runs_named(store: DeploymentStore) -> None:
    """A deployment whose run died in this instance is not renewed with the others: its
    lease expires and it is resumed."""
    alive, dead = deployment(1), deployment(2, app="other")
    await store.start(alive, "owner-a", T0 + TTL)
    await store.start(dead, "owner-a", T0 + TTL)
    assert await store.renew("owner-a", [alive.id], T0 + 3 * TTL) == {alive.id: ""}
    now = T0 + 2 * TTL
    assert [o.id for o in await store.orphans(now)] == [dead.id]
    lease = await store.lease_of("other")
    assert lease is not None and as_utc(lease["expires_at"]) == T0 + TTL  # not renewed


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
    await store.append_events(
        [status_event(d, 1, "Status: Updating => Rollback")],
        [PhaseChange(d.id, Phase.ROLLING_BACK, "cancelled by bob")],
    )
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
