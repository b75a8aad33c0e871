"""When a rollout has succeeded or failed: progress deadline and crash loops. Pure; no clock.

The caller passes the time in, like the Deployment controller's ``nowFn``:

>>> from datetime import datetime, timedelta, timezone
>>> from relman_deployer.backends.base import RolloutStatus, ServiceStatus
>>> t0 = datetime(2019, 1, 1, tzinfo=timezone.utc)
>>> p = RolloutPolicy("R1", timeout_seconds=30, crashloop_threshold=3, now=t0)
>>> p.observe(RolloutStatus("R1", (ServiceStatus("web", 2, 1, 2, 1),)), t0)
>>> p.check(t0 + timedelta(seconds=29)) is None
True
>>> p.check(t0 + timedelta(seconds=30))
Verdict(succeeded=False, reason='no progress for 30s')
>>> p.observe(RolloutStatus("R1", (ServiceStatus("web", 2, 2, 2, 2),)), t0)
Verdict(succeeded=True, reason='')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from relman_deployer.backends.base import RolloutStatus

DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_CRASHLOOP_THRESHOLD = 3


@dataclass(frozen=True)
class Verdict:
    succeeded: bool
    reason: str = ""


COMPLETE = Verdict(succeeded=True)


class RolloutPolicy:
    """Judges the status snapshots of one rollout towards ``release_id``.

    Success: a snapshot of that release in which every service is complete. Failure: the
    backend reports one, a service's pods restarted ``crashloop_threshold`` times, or no
    snapshot changed the progress counts for ``timeout_seconds``.
    """

    def __init__(
        self, release_id: str, *, timeout_seconds: int, crashloop_threshold: int, now: datetime
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.release_id = release_id
        self.timeout = timedelta(seconds=timeout_seconds)
        self.crashloop_threshold = crashloop_threshold
        self._last_progress = now
        self._progress_key: object = None

    @property
    def deadline(self) -> datetime:
        """When the rollout fails unless it makes progress first."""
        return self._last_progress + self.timeout

    def seconds_left(self, now: datetime) -> float:
        return max(0.0, (self.deadline - now).total_seconds())

    def observe(self, status: RolloutStatus, now: datetime) -> Verdict | None:
        """The verdict after ``status`` was seen at ``now``, or None while it goes on."""
        if status.release_id != self.release_id:
            return None  # a snapshot of an earlier desired state: neither progress nor failure
        if status.failure:
            return Verdict(succeeded=False, reason=status.failure)
        for service in status.services:
            if self.crashloop_threshold > 0 and service.restarts >= self.crashloop_threshold:
                return Verdict(
                    succeeded=False,
                    reason=(
                        f"pods of {service.name} crash-looping (restarted {service.restarts} times)"
                    ),
                )
        if status.complete:
            return COMPLETE
        key = status.progress_key
        if key != self._progress_key:
            self._progress_key = key
            self._last_progress = now
        return self.check(now)

    def check(self, now: datetime) -> Verdict | None:
        """Failure when the progress deadline has passed at ``now``."""
        if now >= self.deadline:
            return Verdict(succeeded=False, reason=f"no progress for {_seconds(self.timeout)}")
        return None


def _seconds(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"
