"""Webhooks through the CLI against both services as real processes, on the embedded default
and on PostgreSQL (SPEC 9), with a real HTTP receiver on loopback that is down, then answers
500, then too slowly, then well: every event arrives, in order, signed, with its id as the
Idempotency-Key, and each attempt is recorded. A Release service killed while a receiver holds
a delivery sends it again after its restart: at least once, never dropped, never out of order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from relman_release.store.tables import WebhookEventRow
from support.helpers import free_port, wait_for
from support.ops_stack import DB_KINDS, Stack, new_release, stack_on
from support.webhook_receiver import Answer, Received, Receiver

pytestmark = pytest.mark.xdist_group("ops-webhooks")

SECRET = "whsec-for-tests"


@pytest.fixture(params=DB_KINDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path, RELMAN_WEBHOOK_TIMEOUT="1")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    try:
        yield r
    finally:
        r.stop()


def add_webhook(stack: Stack, url: str, *patterns: str) -> str:
    (stack.tmp / "secret").write_text(SECRET + "\n")
    events = [arg for p in patterns for arg in ("--event", p)]
    done = stack.ok(
        "webhooks", "add", url, "-a", "myapp", "--secret-file", str(stack.tmp / "secret"), *events
    )
    assert done.lines[0] == f"Adding webhook {url}... OK"
    match = re.fullmatch(r"Webhook: (W[A-Z]{10})", done.lines[1])
    assert match, done.lines
    assert len(done.lines) == 2  # a secret given is never printed
    return match.group(1)


def verified(item: Received) -> dict[str, Any]:
    """The event, once its signature and Idempotency-Key are checked."""
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", item.headers["Relman-Signature"])
    assert match, item.headers
    expected = hmac.new(SECRET.encode(), match.group(1).encode() + b"." + item.body, hashlib.sha256)
    assert hmac.compare_digest(expected.hexdigest(), match.group(2))
    assert abs(int(match.group(1)) - time.time()) < 600
    event: dict[str, Any] = json.loads(item.body)
    assert item.headers["Idempotency-Key"] == event["id"]
    assert item.headers["Content-Type"] == "application/json"
    return event


def first_arrivals(receiver: Receiver, answered: set[int]) -> list[dict[str, Any]]:
    """Each event once, in the order of its first accepted (2xx-answered) arrival."""
    seen: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(list(receiver.received)):
        if i in answered:
            event = verified(item)
            seen.setdefault(event["id"], event)
    return list(seen.values())


def deliveries(stack: Stack, webhook: str) -> list[dict[str, Any]]:
    out = stack.ok("webhooks", "deliveries", webhook, "--limit", "100", "-o", "json").out
    value = json.loads(out)
    return list(reversed(value))  # oldest first


def test_a_receiver_that_is_down_then_fails_then_is_slow_gets_every_event_in_order(
    stack: Stack, receiver: Receiver
) -> None:
    stack.ok("apps", "create", "myapp")
    webhook = add_webhook(stack, receiver.url, "release.*", "deployment.*")
    listed = stack.ok("webhooks", "-a", "myapp").lines
    assert listed[0].split() == ["ID", "URL", "EVENTS", "CREATED"]
    assert listed[1].split()[:3] == [webhook, receiver.url, "release.*,deployment.*"]

    first = new_release(stack, "myapp")  # release.created (build.complete is not wanted)
    second = stack.ok("env", "set", "A=1", "-a", "myapp").lines[-1].removeprefix("Release: ")
    stack.ok("releases", "promote", second, "-a", "myapp")  # deployment.started, .succeeded
    # Down: the first event's attempts fail, and nothing after it is tried before it.
    wait_for(
        lambda: deliveries(stack, webhook)[0]["attempts"] >= 1,
        timeout=30,
        what="a failed attempt while the receiver is down",
    )
    pending = deliveries(stack, webhook)
    assert pending[0]["last_error"].startswith("could not reach the receiver")
    assert all(d["attempts"] == 0 for d in pending[1:])

    # Up, but first a 500, then an answer later than the 1 s timeout, then answers.
    receiver.script.extend([Answer(status=500), Answer(delay=3)])
    receiver.start()
    wait_for(
        lambda: all(d["state"] == "delivered" for d in deliveries(stack, webhook))
        and len(deliveries(stack, webhook)) == 4,
        timeout=90,
        what="every event delivered",
    )
    answered = set(range(len(receiver.received))) - {0, 1}  # the 500 and the slow one
    events = first_arrivals(receiver, answered)
    assert [e["type"] for e in events] == [
        "release.created",
        "release.created",
        "deployment.started",
        "deployment.succeeded",
    ]
    assert [e["data"]["release_id"] for e in events] == [first, second, second, second]
    assert {e["app"] for e in events} == {"myapp"}
    assert {e["actor"] for e in events} == {"admin"}
    assert events[1]["data"]["description"] == "env add:A"
    assert events[3]["data"]["outcome"] == "succeeded"

    history = deliveries(stack, webhook)[0]["history"]
    errors = [attempt["error"] for attempt in history]
    assert errors[0].startswith("could not reach the receiver")
    assert "HTTP 500" in errors
    assert "no answer within 1 s" in errors
    assert errors[-1] == "" and history[-1]["status_code"] == 200

    table = stack.ok("webhooks", "deliveries", webhook).lines
    assert table[0].split() == ["EVENT", "TYPE", "STATE", "ATTEMPTS", "LAST", "NEXT"]
    assert all(" delivered " in line for line in table[1:])

    assert stack.ok("webhooks", "remove", webhook).lines == [f"Removing {webhook}... OK"]
    assert stack.ok("webhooks", "-a", "myapp").lines[1:] == []
    gone = stack.run("webhooks", "deliveries", webhook)
    assert (gone.code, gone.err) == (1, f"ERROR: webhook not found: {webhook}\n")


def test_a_release_service_killed_mid_delivery_sends_it_again_after_restart(
    stack: Stack, receiver: Receiver
) -> None:
    stack.ok("apps", "create", "myapp")
    webhook = add_webhook(stack, receiver.url)  # every event
    held = threading.Event()
    receiver.script.append(Answer(hold=held))
    receiver.start()
    new_release(stack, "myapp")  # build.complete, then release.created (one transaction)

    with receiver.arrived:
        assert receiver.arrived.wait_for(lambda: len(receiver.received) >= 1, timeout=30)
    assert stack.release is not None
    stack.release.kill9()
    held.set()  # the receiver answers 200, but nobody is there to record it
    stack.start_release()
    wait_for(
        lambda: [d["state"] for d in deliveries(stack, webhook)] == ["delivered", "delivered"],
        timeout=60,
        what="both events delivered after the restart",
    )
    ids = [verified(item)["id"] for item in receiver.received]
    types = [json.loads(item.body)["type"] for item in receiver.received]
    # The held event again (same Idempotency-Key), and only then the next one.
    assert ids[0] == ids[1]
    assert types[:2] == ["build.complete", "build.complete"]
    assert types[2:] == ["release.created"]


def age_event(stack: Stack, event_id: str, days: float) -> None:
    """Moves an event's creation ``days`` back, as if it had been written then."""
    url = stack.database_url or f"sqlite:///{stack.data_dir / 'release.db'}"
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    table = WebhookEventRow.__table__
    try:
        with engine.begin() as conn:
            when = conn.execute(
                sqlalchemy.select(table.c.created).where(table.c.id == event_id)
            ).scalar_one()
            conn.execute(
                sqlalchemy.update(table)
                .where(table.c.id == event_id)
                .values(created=when - timedelta(days=days))
            )
    finally:
        engine.dispose()


def test_delivered_history_older_than_a_week_is_forgotten_and_recent_history_stays(
    stack: Stack, receiver: Receiver
) -> None:
    stack.ok("apps", "create", "myapp")
    webhook = add_webhook(stack, receiver.url, "release.*")
    receiver.start()
    new_release(stack, "myapp")
    stack.ok("env", "set", "A=1", "-a", "myapp")
    wait_for(
        lambda: [d["state"] for d in deliveries(stack, webhook)] == ["delivered", "delivered"],
        timeout=60,
        what="both events delivered",
    )
    old, recent = deliveries(stack, webhook)
    age_event(stack, old["event_id"], 8)  # older than RELMAN_WEBHOOK_HISTORY_DAYS (7)
    assert stack.release is not None
    stack.release.stop()
    stack.start_release()  # the history is trimmed at start (then every 10 minutes)
    wait_for(
        lambda: [d["event_id"] for d in deliveries(stack, webhook)] == [recent["event_id"]],
        timeout=30,
        what="the week-old delivery forgotten",
    )
    left = deliveries(stack, webhook)[0]
    assert left["state"] == "delivered" and len(left["history"]) == 1


def test_bad_webhooks_are_refused_and_change_nothing(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    bad_url = stack.run("webhooks", "add", "ftp://example.com/x", "-a", "myapp")
    assert bad_url.code == 1
    assert bad_url.err.startswith('ERROR: invalid webhook URL "ftp://example.com/x"'), bad_url.err
    bad_event = stack.run(
        "webhooks", "add", "http://127.0.0.1:9/x", "-a", "myapp", "--event", "nope.*"
    )
    assert bad_event.code == 1 and 'invalid event pattern "nope.*"' in bad_event.err
    assert stack.ok("webhooks", "-a", "myapp").lines[1:] == []
    made = stack.ok("webhooks", "add", "http://127.0.0.1:9/x", "-a", "myapp")
    assert made.lines[2].startswith("Secret: ") and len(made.lines[2]) > 30
    assert "only time" in made.err
