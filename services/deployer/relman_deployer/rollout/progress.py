"""Progress and the progress deadline, as the Deployment controller judges them.

``DeploymentProgressing`` and ``DeploymentTimedOut`` of ``util/deployment_util.go``: a rollout
makes progress when more pods are updated, fewer old pods remain, or more pods are ready or
available; it has timed out when the last progress is older than the deadline. The clock is a
parameter (``now_fn``), so deadline logic is tested without waiting:

>>> from datetime import UTC, datetime, timedelta
>>> t = [datetime(2019, 1, 1, tzinfo=UTC)]
>>> tracker = ProgressTracker(deadline_seconds=600, now_fn=lambda: t[0])
>>> tracker.observe(DeploymentCounts(desired=2, total=2, updated=0, available=2))
False
>>> t[0] += timedelta(seconds=599)
>>> surged = DeploymentCounts(desired=2, total=3, updated=1, available=2)
>>> tracker.observe(surged), tracker.timed_out()  # a new pod: progress, the deadline restarts
(True, False)
>>> t[0] += timedelta(seconds=601)
>>> tracker.observe(surged), tracker.timed_out()  # nothing moved for 601 s
(False, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from relman_deployer.rollout.arithmetic import deployment_complete


@dataclass(frozen=True)
class DeploymentCounts:
    """The ``DeploymentStatus`` counts the controller compares between two observations."""

    desired: int
    total: int
    updated: int
    available: int
    ready: int | None = None  # defaults to ``available`` (minReadySeconds 0)

    @property
    def ready_pods(self) -> int:
        return self.available if self.ready is None else self.ready

    @property
    def complete(self) -> bool:
        return deployment_complete(self.desired, self.updated, self.total, self.available)


def deployment_progressing(old: DeploymentCounts, new: DeploymentCounts) -> bool:
    """``DeploymentProgressing``: did the rollout move forward between ``old`` and ``new``?

    >>> a = DeploymentCounts(desired=3, total=4, updated=1, available=3)
    >>> deployment_progressing(a, DeploymentCounts(desired=3, total=3, updated=1, available=3))
    True
    >>> deployment_progressing(a, DeploymentCounts(desired=3, total=4, updated=1, available=2))
    False
    """
    old_old_pods = old.total - old.updated
    new_old_pods = new.total - new.updated
    return (
        new.updated > old.updated
        or new_old_pods < old_old_pods
        or new.ready_pods > old.ready_pods
        or new.available > old.available
    )


def deployment_timed_out(last_progress: datetime, deadline_seconds: float, now: datetime) -> bool:
    """``DeploymentTimedOut``: the last progress is more than ``deadline_seconds`` ago.

    >>> from datetime import UTC, datetime
    >>> t0 = datetime(2019, 1, 1, tzinfo=UTC)
    >>> deployment_timed_out(t0, 600, t0 + timedelta(seconds=600))
    False
    >>> deployment_timed_out(t0, 600, t0 + timedelta(seconds=601))
    True
    """
    return last_progress + timedelta(seconds=deadline_seconds) < now


class ProgressTracker:
    """Keeps the time of the last progress of one rollout and answers "timed out?".

    A complete rollout never times out (``NewRSAvailableReason``).
    """

    def __init__(self, deadline_seconds: float, now_fn: Callable[[], datetime]) -> None:
        self.deadline_seconds = deadline_seconds
        self._now = now_fn
        self.last_progress = now_fn()
        self._last: DeploymentCounts | None = None
        self._complete = False

    def observe(self, counts: DeploymentCounts) -> bool:
        """Record a new observation; True when it shows progress since the previous one."""
        progressed = self._last is not None and deployment_progressing(self._last, counts)
        if progressed:
            self.last_progress = self._now()
        self._last = counts
        self._complete = counts.complete
        return progressed

    def reset(self) -> None:
        """Start the deadline over (a new rollout, e.g. the rollback after a failure)."""
        self.last_progress = self._now()
        self._last = None
        self._complete = False

    def timed_out(self) -> bool:
        if self._complete:
            return False
        return deployment_timed_out(self.last_progress, self.deadline_seconds, self._now())

    def remaining(self) -> float:
        """Seconds left before the deadline passes (negative once it has)."""
        deadline = self.last_progress + timedelta(seconds=self.deadline_seconds)
        return (deadline - self._now()).total_seconds()
