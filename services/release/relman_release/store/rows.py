"""Database rows to domain objects (and the outcome column's text)."""

from __future__ import annotations

from typing import Any

from relman_common.clock import as_utc
from relman_common.lifecycle import BuildStatus, Outcome
from sqlalchemy import Row

from relman_release.domain.model import App, Build, LogLine, Release
from relman_release.domain.tokens import ApiToken
from relman_release.store.codec import decode_images


def app(row: Row[Any]) -> App:
    return App(
        name=row.name,
        created=as_utc(row.created),
        actor=row.actor,
        active_release_id=row.active_release_id,
        latest_release_id=row.latest_release_id,
        current_deployment_id=row.current_deployment_id,
        current_deployment_started=(
            as_utc(row.current_deployment_started)
            if row.current_deployment_started is not None
            else None
        ),
    )


def build(row: Row[Any], app: str) -> Build:
    return Build(
        id=row.id,
        app=app,
        manifest=row.manifest,
        images=decode_images(row.images),
        description=row.description,
        git_sha=row.git_sha,
        status=BuildStatus(row.status),
        created=as_utc(row.created),
        started=as_utc(row.started) if row.started is not None else None,
        ended=as_utc(row.ended) if row.ended is not None else None,
        actor=row.actor,
        release_id=row.release_id,
        reason=row.reason,
        source_sha256=row.source_sha256,
        manifest_path=row.manifest_path,
        no_cache=bool(row.no_cache),
        log_lines=int(row.log_lines),
    )


def log_line(row: Row[Any]) -> LogLine:
    return LogLine(seq=int(row.seq), time=as_utc(row.time), text=row.text)


def release(row: Row[Any], app: str, env: dict[str, str]) -> Release:
    return Release(
        id=row.id,
        app=app,
        build_id=row.build_id,
        env=env,
        description=row.description,
        created=as_utc(row.created),
        actor=row.actor,
        last_deployment_id=row.last_deployment_id,
        last_deployment_outcome=outcome(row.last_deployment_outcome),
    )


def outcome(text: str) -> Outcome | None:
    return Outcome(text) if text else None


def outcome_text(outcome: Outcome | None) -> str:
    return outcome.value if outcome is not None else ""


def token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        name=row.name,
        kind=row.kind,
        created=as_utc(row.created),
        actor=row.actor,
        revoked=as_utc(row.revoked) if row.revoked is not None else None,
    )
