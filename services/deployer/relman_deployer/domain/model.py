"""Deployments, their events and what the Release service says to deploy, as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from relman_common.clock import as_utc
from relman_common.lifecycle import Kind, Outcome, Phase
from relman_common.locks import AppLock
from relman_common.manifest import ReleaseCommand, Service

# Source and reason of the app status events the Deployer itself writes.
APP_SOURCE = "system/k8s/atom/app"
STATUS_CHANGE = "StatusChange"


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
    phase: Phase = Phase.STARTING
    # Progress deadline of each rollout (the release's, then the rollback's), in seconds.
    timeout_seconds: int = 600
    # Who asked to cancel it; empty when nobody did.
    cancelled_by: str = ""
    # The app lock it was started past with force ("forced past the lock by X at T: ..."),
    # empty when the app was not locked.
    lock_override: str = ""

    @property
    def running(self) -> bool:
        return self.outcome is Outcome.RUNNING

    def with_outcome(self, outcome: Outcome, reason: str, ended: datetime) -> Deployment:
        return replace(self, outcome=outcome, reason=reason, ended=ended, phase=Phase.ENDED)


@dataclass(frozen=True)
class DeploymentEvent:
    """One line of a deployment's log. ``seq`` is per deployment, from 1, without gaps."""

    deployment_id: str
    seq: int
    time: datetime
    source: str
    reason: str
    message: str


@dataclass(frozen=True)
class PhaseChange:
    """A deployment entering ``phase`` (and why, for a rollback). Stored in the transaction
    of the StatusChange event that announces it, so a resumed deployment knows exactly which
    transitions it has written: the phase and its event are both there, or neither is."""

    deployment_id: str
    phase: Phase
    reason: str = ""


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
    """What the Release service says a release runs (services parsed, images resolved), and
    what the app runs now (the active release and its services: what a rollback restores)."""

    release: Release
    services: tuple[Service, ...]
    release_command: ReleaseCommand | None = None
    active: Release | None = None
    active_services: tuple[Service, ...] = ()
    # Set while the app is locked (SPEC 9).
    lock: AppLock | None = None


def rfc3339(value: datetime) -> str:
    """UTC, whole seconds, ``Z`` suffix.

    >>> from datetime import timezone, timedelta
    >>> rfc3339(datetime(2019, 1, 1, 1, 0, 49, 500, tzinfo=timezone(timedelta(hours=1))))
    '2019-01-01T00:00:49Z'
    """
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
