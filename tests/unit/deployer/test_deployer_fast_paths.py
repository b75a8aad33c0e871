"""The Deployer's fast paths keep their promises: grouped writes, in-memory replays, one message
per event, prioritised Release-service writes. (Those over its store, on both databases, are in
tests/integration/deployer/test_deployer_fast_paths.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from relman_common.db import DbExecutor, make_engine, sqlite_url, writer
from relman_common.errors import FailedPrecondition
from relman_common.group_commit import GroupCommit
from relman_deployer.api.convert import UpdateMessages
from relman_deployer.domain.model import Outcome
from relman_deployer.events import EventHub
from relman_deployer.release_client import WriteLimiter
from sqlalchemy import Connection, text
from support.deployer import deployment, events, eventually


async def test_writes_queued_together_commit_together_and_one_failure_undoes_only_its_own(
    tmp_path: Path,
) -> None:
    engine = make_engine(sqlite_url(tmp_path / "g.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    executor = DbExecutor(workers=4)
    group = GroupCommit(writer(engine), executor, grouped=True)

    def insert(key: str, fail: bool = False) -> object:
        def run(conn: Connection) -> str:
            conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": key})
            if fail:
                raise FailedPrecondition(f"no {key}")
            return key

        return run

    try:
        results = await asyncio.gather(
            *(group.run(insert(f"k{i}", fail=i == 7)) for i in range(20)),  # type: ignore[arg-type]
            group.run(insert("k3")),  # type: ignore[arg-type]  # a taken primary key
            return_exceptions=True,
        )
        with engine.connect() as conn:
            stored = sorted(conn.execute(text("SELECT k FROM t")).scalars())
    finally:
        executor.shutdown()
        engine.dispose()
    assert [r for i, r in enumerate(results[:20]) if i != 7] == [
        f"k{i}" for i in range(20) if i != 7
    ]
    assert isinstance(results[7], FailedPrecondition) and str(results[7]) == "no k7"
    assert isinstance(results[20], Exception)  # its own IntegrityError, nobody else's
    assert stored == sorted(f"k{i}" for i in range(20) if i != 7)


def test_a_resumed_deployment_replays_what_memory_lacks_from_the_database() -> None:
    hub = EventHub()
    d = replace(deployment(1), last_seq=4)  # events 1..4 were written by another instance
    hub.open(d.id, d.last_seq)
    sub, recent = hub.subscribe_with_recent(d.id, 0)
    assert recent is None
    hub.publish(d.id, events(d, range(5, 7)))
    assert hub.subscribe_with_recent(d.id, 0)[1] is None  # 1..4 are not in memory
    assert [e.seq for e in hub.subscribe_with_recent(d.id, 4)[1] or []] == [5, 6]
    assert [e.seq for e in hub.subscribe_with_recent(d.id, 5)[1] or []] == [6]
    hub.close(d.id)
    assert hub.subscribe_with_recent(d.id, 4)[1] is None  # ended: the database has it all
    assert sub.queue.qsize() == 2


def test_memory_keeps_only_the_newest_events_and_older_replays_go_to_the_database() -> None:
    hub = EventHub(recent_events=3)
    d = deployment(1)
    hub.open(d.id)
    hub.publish(d.id, events(d, range(1, 6)))
    assert hub.subscribe_with_recent(d.id, 0)[1] is None
    assert [e.seq for e in hub.subscribe_with_recent(d.id, 2)[1] or []] == [3, 4, 5]


def test_each_event_becomes_one_message_shared_by_every_watcher() -> None:
    messages = UpdateMessages(size=2)
    d = deployment(1)
    e1, e2, e3 = events(d, range(1, 4))
    first = messages(e1)
    assert messages(replace(e1)) is first  # the same event read again from the database
    assert first.event.seq == 1 and first.event.message == "e1"
    messages(e2)
    messages(e3)
    assert messages(e1) is not first  # evicted, built again
    assert messages(d) is not messages(d)  # deployments change: never shared


async def test_urgent_release_writes_go_first_and_never_more_than_the_limit_at_once() -> None:
    limiter = WriteLimiter(2)
    in_flight = 0
    most = 0
    order: list[str] = []
    gate = asyncio.Event()

    async def write(name: str, urgent: bool) -> None:
        nonlocal in_flight, most
        async with limiter.slot(urgent=urgent):
            in_flight += 1
            most = max(most, in_flight)
            order.append(name)
            await gate.wait()
            in_flight -= 1

    first = [asyncio.create_task(write(f"b{i}", False)) for i in range(2)]
    await eventually(lambda: len(order) == 2)
    rest = [asyncio.create_task(write(f"b{i}", False)) for i in range(2, 4)]
    rest += [asyncio.create_task(write(f"u{i}", True)) for i in range(2)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*first, *rest)
    assert most == 2
    assert order == ["b0", "b1", "u0", "u1", "b2", "b3"]


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    limiter = WriteLimiter(1)
    release = asyncio.Event()
    done: list[str] = []

    async def write(name: str) -> None:
        async with limiter.slot(urgent=False):
            await release.wait()
            done.append(name)

    holder = asyncio.create_task(write("a"))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(write("b"))
    waiting = asyncio.create_task(write("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiting), 5)
    assert done == ["a", "c"]


def test_only_a_whole_log_is_kept_after_the_end() -> None:
    hub = EventHub()
    d = replace(deployment(1), last_seq=2)  # resumed: events 1..2 are not in memory
    hub.open(d.id, d.last_seq)
    hub.publish(d.id, events(d, range(3, 5)))
    hub.close(d.id, replace(d, outcome=Outcome.SUCCEEDED, last_seq=4))
    assert hub.ended_log(d.id, 0) is None


async def test_a_watcher_waiting_for_nothing_looks_at_the_database_after_its_poll() -> None:
    hub = EventHub()
    sub = hub.subscribe("DAAAAAAAAAA")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await asyncio.wait_for(hub.next(sub, 0.1), 5) is None
    assert 0.1 <= loop.time() - start < 0.1 + 1.0
    d = deployment(1)
    sub.offer(events(d, range(1, 2)))
    item = await hub.next(sub, 0.1)  # something waiting: handed over at once
    assert isinstance(item, list) and item[0].seq == 1


async def test_background_release_writes_never_take_more_than_their_share() -> None:
    limiter = WriteLimiter(3, background=1)
    gate = asyncio.Event()
    order: list[str] = []

    async def write(name: str, urgent: bool) -> None:
        async with limiter.slot(urgent=urgent):
            order.append(name)
            await gate.wait()

    tasks = [asyncio.create_task(write(f"b{i}", False)) for i in range(2)]
    tasks += [asyncio.create_task(write(f"u{i}", True)) for i in range(2)]
    await eventually(lambda: len(order) == 3)
    assert order == ["b0", "u0", "u1"]  # b1 waits: one background write at a time
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["b0", "u0", "u1", "b1"]
