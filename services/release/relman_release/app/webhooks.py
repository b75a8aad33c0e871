"""Webhooks: add, list, remove, and read their deliveries; the delivery worker's steps."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from relman_common.errors import WEBHOOK_NOT_FOUND, InvalidArgument, NotFound
from relman_common.vocabulary import WEBHOOK, check_id, new_id, page_limit, validate_app_name

from relman_release.app import lookups
from relman_release.domain.webhooks import (
    MAX_SECRET,
    Attempt,
    Delivery,
    Target,
    Webhook,
    check_patterns,
    check_url,
)
from relman_release.ports import UnitOfWork


@dataclass(frozen=True)
class AddedWebhook:
    webhook: Webhook
    # The secret made for it when none was given ("" otherwise).
    secret: str


def add_webhook(
    uow: UnitOfWork, app_name: str, url: str, patterns: Sequence[str], secret: str, actor: str
) -> AddedWebhook:
    validate_app_name(app_name)
    check_url(url)
    events = check_patterns(patterns)
    if len(secret) > MAX_SECRET or "\x00" in secret:
        raise InvalidArgument(f"invalid secret: at most {MAX_SECRET} characters", field="secret")
    made = "" if secret else secrets.token_urlsafe(32)
    with uow.write() as repo:
        app = lookups.app_named(repo, app_name, lock=True)
        hook = Webhook(new_id(WEBHOOK), app.name, url, events, uow.now(), actor)
        repo.add_webhook(hook, (secret or made).encode())
    return AddedWebhook(hook, made)


def list_webhooks(uow: UnitOfWork, app_name: str) -> list[Webhook]:
    validate_app_name(app_name)
    with uow.read() as repo:
        return repo.webhooks_of(lookups.app_named(repo, app_name).name)


def _webhook(repo: Any, webhook_id: str) -> Webhook:
    check_id(WEBHOOK, webhook_id, "id")
    found = repo.find_webhook(webhook_id)
    if found is None:
        raise NotFound(f"webhook not found: {webhook_id}", reason=WEBHOOK_NOT_FOUND, field="id")
    hook: Webhook = found[0]
    return hook


def remove_webhook(uow: UnitOfWork, webhook_id: str) -> None:
    with uow.write() as repo:
        repo.delete_webhook(_webhook(repo, webhook_id).id)


def list_deliveries(uow: UnitOfWork, webhook_id: str, limit: int) -> list[Delivery]:
    size = page_limit(limit)
    with uow.read() as repo:
        return repo.list_deliveries(_webhook(repo, webhook_id).id, size)


# --- the delivery worker's steps ---


def due(uow: UnitOfWork, limit: int) -> list[tuple[int, str]]:
    with uow.read() as repo:
        return repo.due_deliveries(uow.now(), limit)


def next_due(uow: UnitOfWork) -> datetime | None:
    with uow.read() as repo:
        return repo.next_due()


def claim(uow: UnitOfWork, seq: int, owner: str, lease: float) -> Target | None:
    """The delivery, now ``owner``'s for ``lease`` seconds; None if another took it."""
    with uow.write() as repo:
        now = uow.now()
        if not repo.claim_delivery(seq, owner, now, now + timedelta(seconds=lease)):
            return None
        return repo.delivery_target(seq)


def record(
    uow: UnitOfWork,
    seq: int,
    owner: str,
    attempt: Attempt,
    *,
    state: str,
    attempts_made: int,
    next_attempt: datetime | None,
    delivered: datetime | None,
) -> bool:
    with uow.write() as repo:
        return repo.record_attempt(
            seq,
            owner,
            attempt,
            state=state,
            attempts_made=attempts_made,
            next_attempt=next_attempt,
            delivered=delivered,
        )


def forget_history(uow: UnitOfWork, keep: timedelta, limit: int) -> tuple[int, int]:
    """One batch, one transaction: up to ``limit`` finished deliveries of events older than
    ``keep``, with their attempts, and up to ``limit`` such events; how many deliveries and
    how many events went (fewer than ``limit`` of both: nothing more to do now)."""
    with uow.write() as repo:
        return repo.forget_webhook_history(uow.now() - keep, limit)
