"""Rows of the Deployer's tables to domain values and back (by :mod:`relman_common.records`:
a column holds the field of its name), and the listing's page token."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from relman_common.clock import as_utc
from relman_common.errors import InvalidArgument
from relman_common.records import from_row, to_row
from sqlalchemy.engine import RowMapping

from relman_deployer.domain.model import Deployment, DeploymentEvent


def deployment_row(d: Deployment) -> dict[str, Any]:
    return to_row(d)


def deployment(row: RowMapping) -> Deployment:
    return from_row(Deployment, row)


def event_row(e: DeploymentEvent) -> dict[str, Any]:
    return to_row(e)


def event(row: RowMapping) -> DeploymentEvent:
    return from_row(DeploymentEvent, row)


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
