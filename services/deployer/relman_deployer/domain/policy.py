"""When a rollout has succeeded or failed. Pure; no clock (the caller passes the time in).

Success: every service of the release is complete. Failure: a pod of the release is in a state
that cannot heal (:mod:`.failfast`: an image that cannot be pulled, a crash loop, OOMKilled, a
missing config, unschedulable for longer than a grace), or a service's Deployment says
``Progressing False ProgressDeadlineExceeded``: the verdict of the progress judge its
controller runs (the real one, or the ``sim``'s), worded the same by both
backends. A backend that never gives that verdict (its controller is down, say) is caught by a
backstop: the same judge, run here on the counts the backend reports, with the deadline plus
a grace.

>>> from datetime import datetime, timedelta, timezone
>>> from relman_deployer.backends.base import RolloutStatus, ServiceStatus
>>> from relman_deployer.rollout import DeploymentCondition
>>> t0 = datetime(2019, 1, 1, tzinfo=timezone.utc)
>>> p = RolloutPolicy("R1", timeout_seconds=30, crashloop_threshold=3, now=t0)
>>> p.observe(RolloutStatus("R1", (ServiceStatus("web", 2, 1, 3, 2),)), t0) is None
True
>>> timed_out = DeploymentCondition("Progressing", "False", "ProgressDeadlineExceeded",
...     'ReplicaSet "web-5d4f8b7c9" has timed out progressing.', t0, t0)
>>> stuck = ServiceStatus("web", 2, 1, 3, 2, conditions=(timed_out,))
>>> p.observe(RolloutStatus("R1", (stuck,)), t0 + timedelta(seconds=31))
Verdict(succeeded=False, reason='web: ReplicaSet "web-5d4f8b7c9" has timed out progressing.')

Without any verdict from the backend, the backstop fails the rollout strictly after the
deadline plus the grace:

>>> p = RolloutPolicy("R1", timeout_seconds=30, crashloop_threshold=3, now=t0)
>>> p.observe(RolloutStatus("R1", (ServiceStatus("web", 2, 1, 3, 2),)), t0) is None
True
>>> p.seconds_left(t0)
40.0
>>> p.check(t0 + timedelta(seconds=40)) is None
True
>>> p.check(t0 + timedelta(seconds=41)).reason
'web: no progress for 40s and no verdict from the cluster (progress deadline 30s + 10s grace)'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relman_deployer.backends.base import PodState, RolloutStatus, ServiceStatus
from relman_deployer.domain.failfast import (
    DEFAULT_SCHEDULING_GRACE_SECONDS,
    immediate_failure,
    unschedulable_failure,
)
from relman_deployer.rollout import (
    PROGRESS_DEADLINE_EXCEEDED,
    DeploymentCondition,
    DeploymentStatus,
    Rollout,
    deployment_timed_out,
    new_replica_set_condition,
    requeue_after,
    sync_rollout_status,
)

DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_CRASHLOOP_THRESHOLD = 3
# How much longer than the deadline the backstop waits for the backend's own verdict: the
# controller re-checks a stuck Deployment a second after its deadline, its times have whole
# seconds, and the status still has to reach us through a watch.
BACKSTOP_GRACE_SECONDS = 10


@dataclass(frozen=True)
class Verdict:
    succeeded: bool
    reason: str = ""


COMPLETE = Verdict(succeeded=True)


class RolloutPolicy:
    """Judges the status snapshots of one rollout towards ``release_id``.

    ``timeout_seconds`` is the progress deadline the backend was given
    (``AppSpec.progress_deadline_seconds``); snapshots of another release are neither progress
    nor failure. A ``ProgressDeadlineExceeded`` condition that was there when this rollout
    began (in the first snapshot, taken before the backend was given the release, or in one of
    another release) is not this rollout's verdict: it is left over from the rollout before
    (the one a rollback undoes, say), and the controller keeps it until the next progress.
    """

    def __init__(
        self,
        release_id: str,
        *,
        timeout_seconds: int,
        crashloop_threshold: int,
        now: datetime,
        grace_seconds: int = BACKSTOP_GRACE_SECONDS,
        scheduling_grace_seconds: float = DEFAULT_SCHEDULING_GRACE_SECONDS,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.release_id = release_id
        self.timeout_seconds = timeout_seconds
        self.grace_seconds = grace_seconds
        self.crashloop_threshold = crashloop_threshold
        self.scheduling_grace_seconds = scheduling_grace_seconds
        # Pods of the release the scheduler cannot place: (service, pod, since when).
        self._unschedulable: dict[str, tuple[str, PodState, datetime]] = {}
        self._backstop = Rollout(release_id, 0, progress_deadline_seconds=self.backstop_seconds)
        # The backstop judge's status: per service reported, and of the whole release until
        # the backend reports on it (all from the rollout's start).
        self._started = new_replica_set_condition(
            self._backstop, DeploymentStatus(), created=True, now=now
        )
        self._judged: dict[str, DeploymentStatus] = {}
        self._desired: dict[str, int] = {}
        self._stale: set[tuple[str, DeploymentCondition]] = set()
        self._first = True

    @property
    def backstop_seconds(self) -> int:
        return self.timeout_seconds + self.grace_seconds

    def observe(self, status: RolloutStatus, now: datetime) -> Verdict | None:
        """The verdict after ``status`` was seen at ``now``, or None while it goes on."""
        if status.release_id != self.release_id or self._first:
            self._stale.update((s.name, c) for s in status.services for c in s.conditions)
        self._first = False
        if status.release_id != self.release_id:
            return None  # a snapshot of an earlier desired state: neither progress nor failure
        failed = self._fail_fast(status, now)
        if failed is not None:
            return failed
        if status.complete:
            return COMPLETE
        timed_out = [
            f"{service.name}: {condition.message}"
            for service in status.services
            if (condition := self._deadline_exceeded(service)) is not None
        ]
        if timed_out:
            return Verdict(succeeded=False, reason="; ".join(timed_out))
        for service in status.services:
            self._desired[service.name] = service.desired
            previous = self._judged.get(service.name, self._started)
            self._judged[service.name] = sync_rollout_status(
                self._rollout(service.name), previous, service.deployment_status(), now
            )
        return self.check(now)

    def _fail_fast(self, status: RolloutStatus, now: datetime) -> Verdict | None:
        """A pod state of this release that cannot heal, or a crash loop of a service."""
        unschedulable: set[str] = set()
        for service in status.services:
            for pod in service.pods:
                reason = immediate_failure(
                    service.name, pod, crashloop_threshold=self.crashloop_threshold
                )
                if reason is not None:
                    return Verdict(succeeded=False, reason=reason)
                if pod.unschedulable:
                    unschedulable.add(pod.name)
                    since = self._unschedulable.get(pod.name, (service.name, pod, now))[2]
                    self._unschedulable[pod.name] = (service.name, pod, since)
            if self.crashloop_threshold > 0 and service.restarts >= self.crashloop_threshold:
                # Restarted often enough, though not waiting in CrashLoopBackOff just now.
                worst = max(service.pods, key=lambda p: p.restarts, default=None)
                where = f" (pod {worst.name})" if worst is not None and worst.restarts else ""
                last = ""
                if worst is not None and worst.last_termination:
                    code = f" (code {worst.exit_code})" if worst.exit_code is not None else ""
                    last = f": last exit {worst.last_termination}{code}"
                return Verdict(
                    succeeded=False,
                    reason=(
                        f"pods of {service.name} crash-looping "
                        f"(restarted {service.restarts} times){last}{where}"
                    ),
                )
        for gone in set(self._unschedulable) - unschedulable:
            del self._unschedulable[gone]
        return self._scheduling_failure(now)

    def _scheduling_failure(self, now: datetime) -> Verdict | None:
        for service, pod, since in self._unschedulable.values():
            if (now - since).total_seconds() >= self.scheduling_grace_seconds:
                reason = unschedulable_failure(service, pod, self.scheduling_grace_seconds)
                return Verdict(succeeded=False, reason=reason)
        return None

    def check(self, now: datetime) -> Verdict | None:
        """A pod unschedulable for longer than the grace; else the backstop's failure:
        strictly more than deadline + grace without progress."""
        unschedulable = self._scheduling_failure(now)
        if unschedulable is not None:
            return unschedulable
        if not self._judged:
            if deployment_timed_out(self._backstop, self._started, now):
                return Verdict(
                    succeeded=False,
                    reason=(
                        f"the cluster reported nothing of release {self.release_id} for "
                        f"{self.backstop_seconds}s ({self._deadline_words})"
                    ),
                )
            return None
        stuck: list[str] = []
        for name, judged in self._judged.items():
            if deployment_timed_out(self._rollout(name), judged, now):
                stuck.append(
                    f"{name}: no progress for {self.backstop_seconds}s and no verdict from "
                    f"the cluster ({self._deadline_words})"
                )
        if stuck:
            return Verdict(succeeded=False, reason="; ".join(stuck))
        return None

    def seconds_left(self, now: datetime) -> float:
        """Until the backstop's next check is due."""
        judged = {self.release_id: self._started} if not self._judged else self._judged
        due = [
            after
            for name, status in judged.items()
            if (after := requeue_after(self._rollout(name), status, now)) is not None
        ]
        due.extend(
            max(self.scheduling_grace_seconds - (now - since).total_seconds(), 0.0)
            for _, _, since in self._unschedulable.values()
        )
        return min(due, default=float(self.backstop_seconds))

    @property
    def _deadline_words(self) -> str:
        return f"progress deadline {self.timeout_seconds}s + {self.grace_seconds}s grace"

    def _rollout(self, name: str) -> Rollout:
        return Rollout(
            name, self._desired.get(name, 0), progress_deadline_seconds=self.backstop_seconds
        )

    def _deadline_exceeded(self, service: ServiceStatus) -> DeploymentCondition | None:
        """The service's ProgressDeadlineExceeded condition, if it is this rollout's."""
        condition = service.progressing
        if condition is None or condition.reason != PROGRESS_DEADLINE_EXCEEDED:
            return None
        if (service.name, condition) in self._stale:
            return None
        return condition
