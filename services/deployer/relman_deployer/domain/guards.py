"""What must hold before a release may be promoted, with the exact words users see."""

from __future__ import annotations

import re

from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.ids import DEPLOYMENT, RELEASE, looks_like

from relman_deployer.domain.model import Deployable, Deployment, Phase, rfc3339

EMPTY_MANIFEST = "can not promote a release with an empty manifest"
OLDER_RELEASE = "can not promote an older release, try rollback"

_APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")


def check_app_name(app: str) -> None:
    if not app:
        raise InvalidArgument("app name is required (-a/--app)")
    if not _APP_NAME.fullmatch(app):
        raise InvalidArgument(
            f"invalid app name {app!r}: lowercase letters, digits and '-', starting with a "
            "letter, at most 30 characters"
        )


def check_timeout(timeout_seconds: int) -> None:
    if timeout_seconds < 0:
        raise InvalidArgument(f"timeout must not be negative, got {timeout_seconds}")


def check_promotable(deployable: Deployable, *, force: bool) -> None:
    """Raise :class:`FailedPrecondition` unless ``deployable`` may be promoted.

    Promoting the active release again is allowed: it re-deploys it (as Convox does).
    """
    if deployable.build is None or not deployable.build.manifest.strip():
        raise FailedPrecondition(EMPTY_MANIFEST)
    active = deployable.active
    if not force and active is not None and deployable.release.created < active.created:
        raise FailedPrecondition(OLDER_RELEASE)


def app_busy(running: Deployment) -> FailedPrecondition:
    """The error for a promotion of an app that already has a running deployment.

    >>> from datetime import datetime, timezone
    >>> d = Deployment("DABCDEFGHIJ", "web", "RABCDEFGHIJ", "", "alice",
    ...                datetime(2019, 1, 1, tzinfo=timezone.utc))
    >>> str(app_busy(d))
    'app is currently updating (deployment DABCDEFGHIJ, started by alice at 2019-01-01T00:00:00Z)'
    """
    return FailedPrecondition(
        f"app is currently updating (deployment {running.id}, started by {running.actor} "
        f"at {rfc3339(running.started)})"
    )


def no_running_deployment(app: str) -> FailedPrecondition:
    return FailedPrecondition(f"app {app} has no running deployment to cancel")


def check_cancellable(deployment: Deployment) -> None:
    if deployment.phase is Phase.ROLLING_BACK:
        raise FailedPrecondition(
            f"deployment {deployment.id} of app {deployment.app} is already rolling back"
        )


DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def check_deployment_id(deployment_id: str) -> None:
    if not deployment_id:
        raise InvalidArgument("deployment id is required")
    if not looks_like(DEPLOYMENT, deployment_id):
        raise InvalidArgument(f"invalid deployment id {deployment_id!r}")


def check_release_id(release_id: str, *, required: bool) -> None:
    if not release_id and required:
        raise InvalidArgument("release id is required")
    if release_id and not looks_like(RELEASE, release_id):
        raise InvalidArgument(f"invalid release id {release_id!r}")


def page_size(limit: int) -> int:
    """The page size for a requested ``limit`` (0: the default).

    >>> page_size(0), page_size(5), page_size(1000)
    (10, 5, 100)
    """
    if limit < 0:
        raise InvalidArgument(f"limit must not be negative, got {limit}")
    return min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
