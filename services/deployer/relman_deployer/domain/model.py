"""Deployments and their events, as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from relman_common.clock import as_utc


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    """What a running deployment is doing: moving to its release, or back to the previous one."""

    ROLLING_OUT = "rolling-out"
    ROLLING_BACK = "rolling-back"


class Kind(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


# Source and reason of the app status events the Deployer itself writes.
APP_SOURCE = "system/k8s/atom/app"
STATUS_CHANGE = "StatusChange"


class AppStatus(StrEnum):
    RUNNING = "Running"
    PENDING = "Pending"
    UPDATING = "Updating"
    ROLLBACK = "Rollback"


@dataclass(frozen=True)
class Deployment:
    id: str
    app: str
    release_id: str
    previous_release_id: str
    actor: str
    started: datetime
    kind: Kind = Kind.PROMOTE
    rollback_of: str = ""
    outcome: Outcome = Outcome.RUNNING
    reason: str = ""
    ended: datetime | None = None
    last_seq: int = 0
    phase: Phase = Phase.ROLLING_OUT
    # Progress deadline of each phase, in seconds.
    timeout_seconds: int = 600
    # Who asked to cancel it; empty when nobody did.
    cancelled_by: str = ""

    @property
    def running(self) -> bool:
        return self.outcome is Outcome.RUNNING

    def with_outcome(self, outcome: Outcome, reason: str, ended: datetime) -> Deployment:
        return replace(self, outcome=outcome, reason=reason, ended=ended)


@dataclass(frozen=True)
class DeploymentEvent:
    """One line of a deployment's log. ``seq`` is per deployment, from 1, without gaps."""

    deployment_id: str
    seq: int
    time: datetime
    source: str
    reason: str
    message: str


def status_message(before: AppStatus, after: AppStatus) -> str:
    """The message of an app status event.

    >>> status_message(AppStatus.RUNNING, AppStatus.PENDING)
    'Status: Running => Pending'
    """
    return f"Status: {before.value} => {after.value}"


def rfc3339(value: datetime) -> str:
    """UTC, whole seconds, ``Z`` suffix.

    >>> from datetime import timezone, timedelta
    >>> rfc3339(datetime(2019, 1, 1, 1, 0, 49, 500, tzinfo=timezone(timedelta(hours=1))))
    '2019-01-01T00:00:49Z'
    """
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Build:
    id: str
    manifest: str
    images: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    id: str
    app: str
    build_id: str
    created: datetime
    env: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Deployable:
    """A release to deploy with its build (None if it has none) and the app's active release."""

    release: Release
    build: Build | None
    active: Release | None
