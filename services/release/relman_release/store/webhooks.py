"""The store's part of webhooks: subscriptions, the outbox and its deliveries, attempts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from relman_common.clock import as_utc
from relman_common.secretbox import SecretBox
from sqlalchemy import (
    BindParameter,
    Connection,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from relman_release.domain.webhooks import (
    DELIVERED,
    GAVE_UP,
    OUTBOX,
    PENDING,
    Attempt,
    Delivery,
    Event,
    Target,
    Webhook,
)
from relman_release.store.tables import (
    AppRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEventRow,
    WebhookRow,
)

apps = cast(Table, AppRow.__table__)
hooks = cast(Table, WebhookRow.__table__)
events = cast(Table, WebhookEventRow.__table__)
deliveries = cast(Table, WebhookDeliveryRow.__table__)
attempts = cast(Table, WebhookAttemptRow.__table__)

INSERT_HOOK = insert(hooks)
COUNT_HOOKS = (
    update(apps)
    .where(apps.c.id == bindparam("p_app_id"))
    .values(webhooks=apps.c.webhooks + bindparam("p_by"))
)
HOOKS_OF_APP = (
    select(hooks)
    .where(hooks.c.app_id == bindparam("p_app_id"))
    .order_by(hooks.c.created, hooks.c.id)
)
FIND_HOOK = select(hooks).where(hooks.c.id == bindparam("p_id"))
_OF_HOOK = deliveries.c.webhook_id == bindparam("p_id")
DELETE_HOOK_ATTEMPTS = delete(attempts).where(
    attempts.c.delivery_seq.in_(select(deliveries.c.seq).where(_OF_HOOK))
)
DELETE_HOOK_DELIVERIES = delete(deliveries).where(_OF_HOOK)
DELETE_HOOK = delete(hooks).where(hooks.c.id == bindparam("p_id"))
INSERT_EVENT = insert(events)
INSERT_DELIVERY = insert(deliveries)
# The oldest pending delivery of each webhook: only it may be tried (in order per webhook).
_HEADS = (
    select(func.min(deliveries.c.seq))
    .where(deliveries.c.state == PENDING)
    .group_by(deliveries.c.webhook_id)
    .scalar_subquery()
)
DUE_HEADS = (
    select(deliveries.c.seq, deliveries.c.webhook_id)
    .where(
        deliveries.c.seq.in_(_HEADS),
        deliveries.c.next_attempt <= bindparam("p_now"),
        or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < bindparam("p_now")),
    )
    .order_by(deliveries.c.seq)
    .limit(bindparam("p_limit"))
)
NEXT_DUE = select(func.min(deliveries.c.next_attempt)).where(deliveries.c.seq.in_(_HEADS))
CLAIM = (
    update(deliveries)
    .where(
        deliveries.c.seq == bindparam("p_seq"),
        deliveries.c.state == PENDING,
        or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < bindparam("p_now")),
    )
    .values(claimed_by=bindparam("p_owner"), claimed_until=bindparam("p_until"))
)
TARGET = (
    select(
        hooks.c.url,
        hooks.c.secret,
        hooks.c.id.label("webhook_id"),
        events.c.id.label("event_id"),
        events.c.type,
        events.c.body,
        events.c.created,
        deliveries.c.attempts,
    )
    .join_from(deliveries, hooks, deliveries.c.webhook_id == hooks.c.id)
    .join(events, deliveries.c.event_seq == events.c.seq)
    .where(deliveries.c.seq == bindparam("p_seq"))
)
INSERT_ATTEMPT = insert(attempts)
FINISH_ATTEMPT = (
    update(deliveries)
    .where(deliveries.c.seq == bindparam("p_seq"), deliveries.c.claimed_by == bindparam("p_owner"))
    .values(
        state=bindparam("p_state"),
        attempts=bindparam("p_attempts"),
        next_attempt=bindparam("p_next"),
        last_error=bindparam("p_error"),
        delivered=bindparam("p_delivered"),
        claimed_by="",
        claimed_until=None,
    )
)
LIST_DELIVERIES = (
    select(deliveries, events.c.id.label("event_id"), events.c.type.label("event_type"))
    .join_from(deliveries, events, deliveries.c.event_seq == events.c.seq)
    .where(_OF_HOOK)
    .order_by(deliveries.c.seq.desc())
    .limit(bindparam("p_limit"))
)
ATTEMPTS_OF = (
    select(attempts)
    .where(attempts.c.delivery_seq.in_(bindparam("p_seqs", expanding=True)))
    .order_by(attempts.c.seq)
)

# History: finished deliveries of old events, oldest first, then old events nothing names.
_SEQS: BindParameter[list[int]] = bindparam("p_seqs", expanding=True)
OLD_FINISHED = (
    select(deliveries.c.seq)
    .join_from(deliveries, events, deliveries.c.event_seq == events.c.seq)
    .where(
        deliveries.c.state.in_([DELIVERED, GAVE_UP]),
        events.c.created < bindparam("p_before"),
    )
    .order_by(deliveries.c.seq)
    .limit(bindparam("p_limit"))
)
DELETE_ATTEMPTS_OF = delete(attempts).where(attempts.c.delivery_seq.in_(_SEQS))
DELETE_DELIVERIES = delete(deliveries).where(deliveries.c.seq.in_(_SEQS))
OLD_UNNAMED_EVENTS = (
    select(events.c.seq)
    .where(
        events.c.created < bindparam("p_before"),
        ~exists().where(deliveries.c.event_seq == events.c.seq),
    )
    .order_by(events.c.seq)
    .limit(bindparam("p_limit"))
)
DELETE_EVENTS = delete(events).where(events.c.seq.in_(_SEQS))


def _associated(webhook_id: str) -> bytes:
    return f"webhook:{webhook_id}".encode()


def _hook(row: Any, app: str) -> Webhook:
    return Webhook(
        row.id, app, row.url, tuple(json.loads(row.events)), as_utc(row.created), row.actor
    )


class Webhooks:
    """Mixed into the SQL repository: works inside the transaction of ``conn``."""

    conn: Connection
    _app_id: Callable[[str], int]
    _box: SecretBox

    def add_webhook(self, hook: Webhook, secret: bytes) -> None:
        """Stores the webhook; its secret sealed (as envs are)."""
        sealed_secret = self._box.seal(secret, _associated(hook.id))
        values = {
            "id": hook.id,
            "app_id": self._app_id(hook.app),
            "url": hook.url,
            "events": json.dumps(list(hook.events)),
            "secret": sealed_secret,
            "created": hook.created,
            "actor": hook.actor,
        }
        self.conn.execute(INSERT_HOOK, values)
        self.conn.execute(COUNT_HOOKS, {"p_app_id": values["app_id"], "p_by": 1})

    def webhooks_of(self, app: str) -> list[Webhook]:
        return [
            _hook(row, app)
            for row in self.conn.execute(HOOKS_OF_APP, {"p_app_id": self._app_id(app)})
        ]

    def find_webhook(self, webhook_id: str) -> tuple[Webhook, int] | None:
        """The webhook and its app's id."""
        row = self.conn.execute(FIND_HOOK, {"p_id": webhook_id}).one_or_none()
        return None if row is None else (_hook(row, ""), row.app_id)

    def delete_webhook(self, webhook_id: str) -> None:
        found = self.find_webhook(webhook_id)
        if found is None:
            return
        params = {"p_id": webhook_id}
        self.conn.execute(DELETE_HOOK_ATTEMPTS, params)
        self.conn.execute(DELETE_HOOK_DELIVERIES, params)
        self.conn.execute(DELETE_HOOK, params)
        self.conn.execute(COUNT_HOOKS, {"p_app_id": found[1], "p_by": -1})

    def add_event(self, event: Event, webhook_ids: Sequence[str]) -> None:
        """The event in the outbox, and a pending delivery of it to each webhook."""
        OUTBOX.writes += 1  # (a rolled-back write only costs the worker one look)
        values = {
            "id": event.id,
            "app": event.app,
            "type": event.type,
            "created": event.created,
            "body": event.body,
        }
        key = self.conn.execute(INSERT_EVENT, values).inserted_primary_key
        assert key is not None
        rows = [
            {
                "webhook_id": hook,
                "event_seq": int(key[0]),
                "state": PENDING,
                "attempts": 0,
                "next_attempt": event.created,
                "last_error": "",
                "claimed_by": "",
            }
            for hook in webhook_ids
        ]
        self.conn.execute(INSERT_DELIVERY, rows)

    def due_deliveries(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        """(seq, webhook id) of the heads that are due and not claimed, oldest first."""
        found = self.conn.execute(DUE_HEADS, {"p_now": now, "p_limit": limit})
        return [(row.seq, row.webhook_id) for row in found]

    def next_due(self) -> datetime | None:
        value = self.conn.execute(NEXT_DUE).scalar()
        return None if value is None else as_utc(value)

    def claim_delivery(self, seq: int, owner: str, now: datetime, until: datetime) -> bool:
        params = {"p_seq": seq, "p_owner": owner, "p_now": now, "p_until": until}
        return self.conn.execute(CLAIM, params).rowcount == 1

    def delivery_target(self, seq: int) -> Target | None:
        row = self.conn.execute(TARGET, {"p_seq": seq}).one_or_none()
        if row is None:
            return None
        return Target(
            seq=seq,
            url=row.url,
            secret=self._box.open(row.secret, _associated(row.webhook_id)),
            event_id=row.event_id,
            event_type=row.type,
            body=bytes(row.body),
            event_created=as_utc(row.created),
            attempts=row.attempts,
        )

    def record_attempt(
        self,
        seq: int,
        owner: str,
        attempt: Attempt,
        *,
        state: str,
        attempts_made: int,
        next_attempt: datetime | None,
        delivered: datetime | None,
    ) -> bool:
        """The attempt, and the delivery's new state, if ``owner`` still holds it."""
        params = {
            "p_seq": seq,
            "p_owner": owner,
            "p_state": state,
            "p_attempts": attempts_made,
            "p_next": next_attempt,
            "p_error": attempt.error,
            "p_delivered": delivered,
        }
        if self.conn.execute(FINISH_ATTEMPT, params).rowcount != 1:
            return False
        self.conn.execute(
            INSERT_ATTEMPT,
            {
                "delivery_seq": seq,
                "time": attempt.time,
                "status_code": attempt.status_code,
                "error": attempt.error,
            },
        )
        return True

    def list_deliveries(self, webhook_id: str, limit: int) -> list[Delivery]:
        found = list(self.conn.execute(LIST_DELIVERIES, {"p_id": webhook_id, "p_limit": limit}))
        history: dict[int, list[Attempt]] = {}
        if found:
            for row in self.conn.execute(ATTEMPTS_OF, {"p_seqs": [r.seq for r in found]}):
                history.setdefault(row.delivery_seq, []).append(
                    Attempt(as_utc(row.time), row.status_code, row.error)
                )
        return [
            Delivery(
                seq=row.seq,
                webhook_id=row.webhook_id,
                event_id=row.event_id,
                event_type=row.event_type,
                state=row.state,
                attempts=row.attempts,
                next_attempt=as_utc(row.next_attempt) if row.next_attempt else None,
                last_error=row.last_error,
                delivered=as_utc(row.delivered) if row.delivered else None,
                history=tuple(history.get(row.seq, ())),
            )
            for row in found
        ]

    def forget_webhook_history(self, before: datetime, limit: int) -> tuple[int, int]:
        params = {"p_before": before, "p_limit": limit}
        finished = [row.seq for row in self.conn.execute(OLD_FINISHED, params)]
        if finished:
            self.conn.execute(DELETE_ATTEMPTS_OF, {"p_seqs": finished})
            self.conn.execute(DELETE_DELIVERIES, {"p_seqs": finished})
        unnamed = [row.seq for row in self.conn.execute(OLD_UNNAMED_EVENTS, params)]
        if unnamed:
            self.conn.execute(DELETE_EVENTS, {"p_seqs": unnamed})
        return len(finished), len(unnamed)
