"""Outbox writes: an event about a change goes to the outbox in the transaction of the change,
with a delivery for each of the app's webhooks that wants it (none: nothing is written)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relman_common.locks import rfc3339
from relman_common.vocabulary import EVENT, new_id

from relman_release.domain.model import App, Build, DeploymentReport, Release
from relman_release.domain.webhooks import (
    BUILD_COMPLETE,
    BUILD_FAILED,
    DEPLOYMENT_EVENTS,
    RELEASE_CREATED,
    Event,
    event_body,
    matches,
)
from relman_release.ports import Repository, UnitOfWork


def emit(
    uow: UnitOfWork,
    repo: Repository,
    app: App,
    event_type: str,
    actor: str,
    data: Mapping[str, Any],
) -> None:
    """The event, if a webhook of ``app`` (as read in this transaction) wants it."""
    if not app.webhooks:
        return  # the common case costs nothing
    wanting = [hook.id for hook in repo.webhooks_of(app.name) if matches(hook.events, event_type)]
    if not wanting:
        return
    now = uow.now()
    event_id = new_id(EVENT)
    body = event_body(event_id, event_type, app.name, actor, now, data)
    repo.add_event(Event(event_id, app.name, event_type, now, body), wanting)


def release_created(uow: UnitOfWork, repo: Repository, app: App, release: Release) -> None:
    data = {
        "release_id": release.id,
        "build_id": release.build_id,
        "description": release.description,
    }
    emit(uow, repo, app, RELEASE_CREATED, release.actor, data)


def build_ended(
    uow: UnitOfWork,
    repo: Repository,
    app: App,
    build: Build,
    release_id: str = "",
    reason: str = "",
) -> None:
    """build.complete (with the release made of it) or build.failed (with why)."""
    data = {"build_id": build.id, "description": build.description}
    if reason:
        emit(uow, repo, app, BUILD_FAILED, build.actor, {**data, "reason": reason})
    else:
        emit(uow, repo, app, BUILD_COMPLETE, build.actor, {**data, "release_id": release_id})


def deployment_changed(
    uow: UnitOfWork, repo: Repository, app: App, report: DeploymentReport
) -> None:
    """deployment.started / succeeded / rolled-back / failed / cancelled."""
    data = {
        "deployment_id": report.deployment_id,
        "release_id": report.release_id,
        "outcome": report.outcome.value,
        "reason": report.reason,
        "started": rfc3339(report.started),
    }
    emit(uow, repo, app, DEPLOYMENT_EVENTS[report.outcome], report.actor, data)
