"""The delivery worker: POSTs each webhook's pending events, oldest first, one at a time per
webhook, and records every attempt.

Every ``poll`` seconds (sooner when kicked after a write) it reads the head of each webhook's
queue — its oldest pending delivery — and when that is due, claims it for ``lease`` seconds
(so one of several replicas sends it), POSTs it from a thread, and records the attempt: a 2xx
answer delivers it, anything else (another status, no answer within the timeout, no
connection) schedules the next try (domain.webhooks.retry_delay) until a day has passed. A
process killed mid-delivery leaves the claim to expire; the delivery is then sent again: at
least once, never dropped, and never an event before the one ahead of it.

With a ``history`` it also forgets old deliveries (RELMAN_WEBHOOK_HISTORY_DAYS): at start
and every ``trim_interval`` seconds, the finished (delivered or given up) deliveries of events
older than that, with their attempts, and then those events, in batches of ``HISTORY_BATCH``
rows, one transaction each, so neither the outbox nor the attempts grow forever and no write
waits long behind it. Pending deliveries and recent history stay (``webhooks deliveries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from relman_common.db import DbExecutor

from relman_release.app import webhooks
from relman_release.domain.webhooks import (
    ATTEMPT_TIMEOUT,
    DELIVERED,
    GAVE_UP,
    OUTBOX,
    PENDING,
    Attempt,
    Target,
    gives_up,
    retry_delay,
    signature,
)
from relman_release.ports import UnitOfWork

log = logging.getLogger("relman.webhooks")

POLL_SECONDS = 1.0
# A claim outlives the attempt (its timeout) by this much.
LEASE_MARGIN_SECONDS = 5.0
SENDERS = 8
USER_AGENT = "relman-webhooks/1"
HISTORY_BATCH = 500
TRIM_INTERVAL_SECONDS = 600.0


def post(target: Target, timeout: float) -> tuple[int, str]:
    """POSTs the event; (HTTP status or 0, what went wrong or "")."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": target.event_id,
        "Relman-Event": target.event_type,
        "Relman-Signature": signature(target.secret, int(time.time()), target.body),
    }
    try:
        response = requests.post(
            target.url, data=target.body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        return 0, f"no answer within {timeout:g} s"
    except requests.RequestException as err:
        return 0, f"could not reach the receiver: {type(err).__name__}"
    with contextlib.closing(response):
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}"


class DeliveryWorker:
    def __init__(
        self,
        uow: UnitOfWork,
        db: DbExecutor,
        owner: str,
        *,
        poll: float = POLL_SECONDS,
        timeout: float = ATTEMPT_TIMEOUT,
        rand: Callable[[], float] = random.random,
        history: timedelta | None = None,
        trim_interval: float = TRIM_INTERVAL_SECONDS,
    ) -> None:
        self._uow = uow
        self._db = db
        self._owner = owner
        self._poll = poll
        self._timeout = timeout
        self._outbox_seen = OUTBOX.writes
        self._rand = rand
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook")
        self._kicked = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}  # webhook id -> its sending task
        self._task: asyncio.Task[None] | None = None
        self._history = history
        self._trim_interval = trim_interval
        self._trimmer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhook-deliveries")
        if self._history is not None:
            self._trimmer = asyncio.create_task(self._trim_loop(), name="webhook-history")

    async def stop(self) -> None:
        """Stops sending; a delivery in flight is left to its claim's expiry (sent again)."""
        running = (self._task, self._trimmer, *self._busy.values())
        tasks = [t for t in running if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders.shutdown(wait=False, cancel_futures=True)

    def kick(self) -> None:
        self._kicked.set()

    def kick_if_written(self) -> None:
        """:meth:`kick`, when a write of this process put an event in the outbox since the
        last time (an app without webhooks costs no extra query per write)."""
        if OUTBOX.writes != self._outbox_seen:
            self._outbox_seen = OUTBOX.writes
            self._kicked.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again next round
                log.exception("reading webhook deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self._poll)
            self._kicked.clear()

    async def _trim_loop(self) -> None:
        while True:
            try:
                await self.forget_history()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again next time
                log.exception("forgetting old webhook deliveries failed")
            await asyncio.sleep(self._trim_interval)

    async def forget_history(self) -> tuple[int, int]:
        """Deletes the history older than ``history``, a batch at a time, until a batch finds
        less than a batch of each; how many deliveries and how many events went."""
        if self._history is None:
            return 0, 0
        deliveries = events = 0
        while True:
            gone = await self._db.run(
                webhooks.forget_history, self._uow, self._history, HISTORY_BATCH
            )
            deliveries, events = deliveries + gone[0], events + gone[1]
            if gone[0] < HISTORY_BATCH and gone[1] < HISTORY_BATCH:
                if deliveries or events:
                    log.info("forgot %d old webhook deliveries and %d events", deliveries, events)
                return deliveries, events

    async def _round(self) -> None:
        for seq, webhook_id in await self._db.run(webhooks.due, self._uow, SENDERS * 4):
            if webhook_id in self._busy or len(self._busy) >= SENDERS:
                continue
            task = asyncio.create_task(self._deliver(seq), name=f"webhook-{webhook_id}")
            self._busy[webhook_id] = task
            task.add_done_callback(functools.partial(self._done, webhook_id))

    def _done(self, webhook_id: str, _: asyncio.Task[None]) -> None:
        self._busy.pop(webhook_id, None)
        self._kicked.set()  # its next event may be due at once

    async def _deliver(self, seq: int) -> None:
        try:
            await self._attempt(seq)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is away: the claim expires, the delivery is retried
            log.exception("webhook delivery %s failed", seq)

    async def _attempt(self, seq: int) -> None:
        lease = self._timeout + LEASE_MARGIN_SECONDS
        target = await self._db.run(webhooks.claim, self._uow, seq, self._owner, lease)
        if target is None:
            return  # another replica took it
        loop = asyncio.get_running_loop()
        status, error = await loop.run_in_executor(self._senders, post, target, self._timeout)
        now = self._uow.now()
        made = target.attempts + 1
        if not error:
            state, next_attempt, delivered = DELIVERED, None, now
        elif gives_up(target.event_created, now):
            state, next_attempt, delivered = GAVE_UP, None, None
        else:
            delay = retry_delay(made, self._rand)
            state, next_attempt, delivered = PENDING, now + timedelta(seconds=delay), None
        attempt = Attempt(now, status, error)
        recorded = await self._db.run(
            webhooks.record,
            self._uow,
            seq,
            self._owner,
            attempt,
            state=state,
            attempts_made=made,
            next_attempt=next_attempt,
            delivered=delivered,
        )
        log.info(
            "webhook event %s %s to %s: %s%s",
            target.event_id,
            target.event_type,
            target.url,
            error or f"delivered ({status})",
            "" if recorded else " (claim lost: not recorded)",
        )
