"""Apps, builds and releases as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from relman_common.lifecycle import BuildStatus, Outcome, ReleaseStatus
from relman_common.locks import AppLock
from relman_common.manifest import ReleaseCommand, Service

T = TypeVar("T")


@dataclass(frozen=True)
class App:
    name: str
    created: datetime
    actor: str
    # Empty when nothing was ever promoted.
    active_release_id: str = ""
    # Empty when the app has no release yet.
    latest_release_id: str = ""
    # The deployment started last (its reports count; older ones' do not), and when.
    current_deployment_id: str = ""
    current_deployment_started: datetime | None = None
    # Its lock (SPEC 9): locked_by is empty while it is unlocked.
    locked_by: str = ""
    locked_at: datetime | None = None
    lock_message: str = ""
    # The release active before the active one (a rollback's target): kept by retention.
    previous_active_release_id: str = ""
    # How many webhooks it has: without one, no event is written.
    webhooks: int = 0

    def current_lock(self) -> AppLock | None:
        if not self.locked_by or self.locked_at is None:
            return None
        return AppLock(self.locked_by, self.locked_at, self.lock_message)


@dataclass(frozen=True)
class Build:
    id: str
    app: str
    manifest: str
    images: Mapping[str, str]
    description: str
    git_sha: str
    status: BuildStatus
    created: datetime
    started: datetime | None
    ended: datetime | None
    actor: str
    # The release made of it when it completed; empty before, and for a failed build.
    release_id: str = ""
    # Why it failed ("interrupted" when its runner stopped).
    reason: str = ""
    # Built from an uploaded source archive (empty for an imported build), with these options.
    source_sha256: str = ""
    manifest_path: str = ""
    no_cache: bool = False
    # Lines of its log stored so far.
    log_lines: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (BuildStatus.COMPLETE, BuildStatus.FAILED)


@dataclass(frozen=True)
class LogLine:
    """One line of a build's log; ``seq`` counts from 1 per build, without gaps."""

    seq: int
    time: datetime
    text: str


@dataclass(frozen=True)
class Release:
    id: str
    app: str
    # Empty only for an app's very first env-only release.
    build_id: str
    env: Mapping[str, str]
    description: str
    created: datetime
    actor: str
    last_deployment_id: str = ""
    last_deployment_outcome: Outcome | None = None
    # Never pruned.
    pinned: bool = False
    # Derived for display; see relman_common.lifecycle.release_status.
    status: ReleaseStatus = ReleaseStatus.NONE


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, newest first, and the cursor of the next page (None at the end)."""

    items: list[T]
    next_cursor: int | None = None


@dataclass(frozen=True)
class Deployable:
    """What the Deployer needs to roll a release out, and to roll back to the active one:
    each release with its services (images resolved) and the release command."""

    release: Release
    services: tuple[Service, ...]
    release_command: ReleaseCommand | None
    active: Release | None
    active_services: tuple[Service, ...]
    # The app's lock, if it is locked: the Deployer refuses unless forced.
    lock: AppLock | None = None


@dataclass(frozen=True)
class DeploymentReport:
    """What a Deployer says about one of its deployments."""

    deployment_id: str
    app: str
    release_id: str
    outcome: Outcome
    reason: str
    started: datetime
    # Who started the deployment ("" from a Deployer that does not say).
    actor: str = ""
