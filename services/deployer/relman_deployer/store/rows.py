"""Rows of the Deployer's tables to domain values and back, and the listing's page token."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from relman_common.clock import as_utc
from relman_common.errors import InvalidArgument
from relman_common.lifecycle import Kind, Outcome, Phase
from sqlalchemy.engine import RowMapping

from relman_deployer.domain.model import Deployment, DeploymentEvent


def deployment_row(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "app": d.app,
        "release_id": d.release_id,
        "previous_release_id": d.previous_release_id,
        "actor": d.actor,
        "kind": d.kind.value,
        "rollback_of": d.rollback_of,
        "started": d.started,
        "ended": d.ended,
        "outcome": d.outcome.value,
        "reason": d.reason,
        "phase": d.phase.value,
        "timeout_seconds": d.timeout_seconds,
        "last_seq": d.last_seq,
        "cancelled_by": d.cancelled_by,
    }


def deployment(row: RowMapping) -> Deployment:
    return Deployment(
        id=row["id"],
        app=row["app"],
        release_id=row["release_id"],
        previous_release_id=row["previous_release_id"],
        actor=row["actor"],
        kind=Kind(row["kind"]),
        rollback_of=row["rollback_of"],
        started=as_utc(row["started"]),
        ended=as_utc(row["ended"]) if row["ended"] is not None else None,
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        phase=Phase(row["phase"]),
        timeout_seconds=int(row["timeout_seconds"]),
        last_seq=int(row["last_seq"]),
        cancelled_by=row["cancelled_by"],
    )


def event_row(e: DeploymentEvent) -> dict[str, Any]:
    return {
        "deployment_id": e.deployment_id,
        "seq": e.seq,
        "time": e.time,
        "source": e.source,
        "reason": e.reason,
        "message": e.message,
    }


def event(row: RowMapping) -> DeploymentEvent:
    return DeploymentEvent(
        deployment_id=row["deployment_id"],
        seq=int(row["seq"]),
        time=as_utc(row["time"]),
        source=row["source"],
        reason=row["reason"],
        message=row["message"],
    )


def group_by_deployment(events: Iterable[DeploymentEvent]) -> dict[str, list[DeploymentEvent]]:
    groups: dict[str, list[DeploymentEvent]] = {}
    for event in events:
        groups.setdefault(event.deployment_id, []).append(event)
    return groups


def encode_page_token(last: Deployment) -> str:
    raw = f"{as_utc(last.started).isoformat()}|{last.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        started, last_id = raw.split("|", 1)
        return as_utc(datetime.fromisoformat(started)), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(
            "invalid page_token: pass the next_page_token of the previous page", field="page_token"
        ) from None
