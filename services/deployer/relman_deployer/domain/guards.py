"""What must hold before a release may be promoted, with the exact words users see."""

from __future__ import annotations

from relman_common.errors import (
    APP_BUSY,
    NOT_RUNNING,
    OLDER_RELEASE,
    FailedPrecondition,
    InvalidArgument,
)
from relman_common.locks import check_unlocked

from relman_deployer.domain.model import Deployable, Deployment, rfc3339

OLDER_RELEASE_MESSAGE = "can not promote an older release, try rollback"


def check_timeout(timeout_seconds: int) -> None:
    if timeout_seconds < 0:
        raise InvalidArgument(
            f"timeout must not be negative, got {timeout_seconds}", field="timeout_seconds"
        )


def check_promotable(deployable: Deployable, *, force: bool) -> str:
    """Raise :class:`FailedPrecondition` unless ``deployable`` may be promoted; return the
    lock a forced promotion overrides, as the deployment records it ("" when none).

    Promoting the active release again is allowed: it re-deploys it (as Convox does). The
    Release service has refused already what cannot be deployed at all (an empty manifest).
    """
    overridden = check_unlocked(deployable.lock, force=force)
    active = deployable.active
    if not force and active is not None and deployable.release.created < active.created:
        raise FailedPrecondition(OLDER_RELEASE_MESSAGE, reason=OLDER_RELEASE)
    return overridden


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
        f"at {rfc3339(running.started)})",
        reason=APP_BUSY,
    )


def no_running_deployment(app: str) -> FailedPrecondition:
    return FailedPrecondition(f"app {app} has no running deployment to cancel", reason=NOT_RUNNING)


def check_cancellable(deployment: Deployment) -> None:
    if deployment.phase.rolling_back:
        raise FailedPrecondition(
            f"deployment {deployment.id} of app {deployment.app} is already rolling back"
        )
