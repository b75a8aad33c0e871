"""An app's lock (SPEC 9): who froze its deploys, when and why, and the words users see.

The Release service keeps the lock with the app; the Deployer learns it with what it deploys
and refuses (``check_unlocked``) unless forced, in one place; the CLI words its early refusal
(before it builds or makes a release) with the same function.

>>> from datetime import UTC, datetime
>>> lock = AppLock("alice", datetime(2019, 1, 1, tzinfo=UTC), "launch freeze")
>>> locked_message(lock)
'app is locked by alice at 2019-01-01T00:00:00Z: launch freeze'
>>> overridden_message(lock)
'forced past the lock by alice at 2019-01-01T00:00:00Z: launch freeze'
>>> try:
...     check_unlocked(lock, force=False)
... except FailedPrecondition as err:
...     print(err.reason)
APP_LOCKED
>>> check_unlocked(lock, force=True) == overridden_message(lock), check_unlocked(None, force=True)
(True, '')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from relman_common.errors import APP_LOCKED, FailedPrecondition

# The longest lock message kept.
MAX_LOCK_MESSAGE = 1000


@dataclass(frozen=True)
class AppLock:
    locked_by: str
    locked_at: datetime
    message: str


def rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _said(lock: AppLock) -> str:
    return f"by {lock.locked_by} at {rfc3339(lock.locked_at)}: {lock.message}"


def locked_message(lock: AppLock) -> str:
    """``app is locked by X at T: <message>``: why a promotion was refused."""
    return f"app is locked {_said(lock)}"


def overridden_message(lock: AppLock) -> str:
    """What a deployment started with ``--force`` over a lock records."""
    return f"forced past the lock {_said(lock)}"


def check_unlocked(lock: AppLock | None, *, force: bool) -> str:
    """Raise FAILED_PRECONDITION (reason APP_LOCKED) when ``lock`` holds and not ``force``;
    return what a forced deployment records ("" when there is no lock)."""
    if lock is None:
        return ""
    if not force:
        raise FailedPrecondition(locked_message(lock), reason=APP_LOCKED)
    return overridden_message(lock)
