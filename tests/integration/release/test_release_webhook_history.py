"""Old webhook history is forgotten (RELMAN_WEBHOOK_HISTORY_DAYS), on SQLite and PostgreSQL:
finished deliveries of events older than the history, with their attempts, then the events no
delivery names any more, a bounded batch per transaction. Pending deliveries, the events they
name and recent history stay, and ``webhooks deliveries`` still lists the recent ones."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from relman_common.db import DbExecutor
from relman_release.app import apps, builds, webhooks
from relman_release.domain.webhooks import DELIVERED, GAVE_UP, Attempt
from relman_release.store.uow import SqlUnitOfWork, open_store
from relman_release.webhooks import worker
from relman_release.webhooks.worker import DeliveryWorker
from sqlalchemy import text

from .conftest import new_box

MANIFEST = "services:\n  web:\n    port: 3000\n"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow(db_url: str, clock: Clock) -> Iterator[SqlUnitOfWork]:
    store = open_store(db_url, new_box(), clock=clock)
    yield store
    store.engine.dispose()


def count(uow: SqlUnitOfWork, table: str) -> int:
    with uow.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def counts(uow: SqlUnitOfWork) -> tuple[int, int, int]:
    return (
        count(uow, "webhook_events"),
        count(uow, "webhook_deliveries"),
        count(uow, "webhook_attempts"),
    )


def finish_heads(uow: SqlUnitOfWork, webhook_id: str, state: str, n: int) -> None:
    """Finishes the ``n`` oldest pending deliveries of the webhook, one at a time as the
    worker does (only a webhook's head is due), after a failed attempt and a last one."""
    for _ in range(n):
        due = [seq for seq, hook in webhooks.due(uow, 100) if hook == webhook_id]
        assert due, f"no due delivery of {webhook_id}"
        seq = due[0]
        for made, final in ((1, False), (2, True)):
            assert webhooks.claim(uow, seq, "runner", 30) is not None
            status = 200 if final and state == DELIVERED else 500
            attempt = Attempt(uow.now(), status, "" if status == 200 else "HTTP 500")
            assert webhooks.record(
                uow,
                seq,
                "runner",
                attempt,
                state=state if final else "pending",
                attempts_made=made,
                next_attempt=None if final else uow.now(),
                delivered=uow.now() if final and state == DELIVERED else None,
            )


def new_events(uow: SqlUnitOfWork, n: int) -> None:
    """``n`` imported builds: each makes a build.complete and a release.created event."""
    for i in range(n):
        builds.import_build(uow, "myapp", MANIFEST, {"web": f"img:{i}"}, "", "", "t")


def test_old_finished_history_goes_in_batches_and_recent_or_pending_stays(
    uow: SqlUnitOfWork, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps.create_app(uow, "myapp", "t")
    sent = webhooks.add_webhook(uow, "myapp", "http://127.0.0.1:9/a", [], "s", "t").webhook.id
    # A second webhook that never gets an answer: its deliveries of the same events stay
    # pending, so the events stay until it is removed.
    stuck = webhooks.add_webhook(uow, "myapp", "http://127.0.0.1:9/b", [], "s", "t").webhook.id
    new_events(uow, 4)
    old_events = count(uow, "webhook_events")
    assert old_events == 8
    finish_heads(uow, sent, DELIVERED, old_events - 1)
    finish_heads(uow, sent, GAVE_UP, 1)

    clock.now = T0 + WEEK + timedelta(days=1)
    new_events(uow, 1)  # two recent events
    finish_heads(uow, sent, DELIVERED, 1)  # one recent delivered, one recent pending
    before = counts(uow)
    assert before == (10, 20, 2 * 9)

    # Batches of 3: the 8 old finished deliveries of `sent` go 3, 3, 2, with their attempts;
    # no event goes (`stuck` still names each).
    batches = [webhooks.forget_history(uow, WEEK, 3) for _ in range(4)]
    assert batches == [(3, 0), (3, 0), (2, 0), (0, 0)]
    assert counts(uow) == (10, 12, 2)
    shown = webhooks.list_deliveries(uow, sent, 100)
    assert [(d.state, d.attempts, len(d.history)) for d in shown] == [
        ("pending", 0, 0),
        (DELIVERED, 2, 2),
    ]
    assert len(webhooks.list_deliveries(uow, stuck, 100)) == 10  # pending, old or not

    # Without the stuck webhook (its deliveries go with it) the old events name nothing: the
    # worker deletes them, a batch per transaction, until a batch finds less than a batch.
    webhooks.remove_webhook(uow, stuck)
    assert counts(uow) == (10, 2, 2)
    calls: list[tuple[int, int]] = []
    real = webhooks.forget_history

    def counted(*args: object) -> tuple[int, int]:
        gone = real(*args)  # type: ignore[arg-type]
        calls.append(gone)
        return gone

    monkeypatch.setattr(worker, "HISTORY_BATCH", 3)
    monkeypatch.setattr(worker.webhooks, "forget_history", counted)
    executor = DbExecutor(workers=1, name="test-db")
    try:
        trimmer = DeliveryWorker(uow, executor, "runner", history=WEEK)
        assert asyncio.run(trimmer.forget_history()) == (0, 8)
    finally:
        executor.shutdown()
    assert calls == [(0, 3), (0, 3), (0, 2)]
    assert counts(uow) == (2, 2, 2)
    assert [d.state for d in webhooks.list_deliveries(uow, sent, 100)] == ["pending", DELIVERED]


def test_no_history_setting_keeps_everything(uow: SqlUnitOfWork, clock: Clock) -> None:
    apps.create_app(uow, "myapp", "t")
    sent = webhooks.add_webhook(uow, "myapp", "http://127.0.0.1:9/a", [], "s", "t").webhook.id
    new_events(uow, 1)
    finish_heads(uow, sent, DELIVERED, 2)
    clock.now = T0 + timedelta(days=365)
    executor = DbExecutor(workers=1, name="test-db")
    try:
        assert asyncio.run(DeliveryWorker(uow, executor, "runner").forget_history()) == (0, 0)
    finally:
        executor.shutdown()
    assert counts(uow) == (2, 2, 4)
