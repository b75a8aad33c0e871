"""The one progress judge: the Deployment controller's ``syncRolloutStatus``, as pure functions.

Follows ``pkg/controller/deployment/progress.go``, ``sync.go`` (``calculateStatus``, the
conditions ``getNewReplicaSet`` records) and ``util/deployment_util.go`` of Kubernetes 1.20:
a rollout *progresses* when the new status has more updated pods, fewer old pods
(``replicas - updatedReplicas``), more ready or more available pods than the previous status;
only progress refreshes the ``Progressing`` condition's ``lastUpdateTime``, and the rollout has
*timed out* strictly after ``lastUpdateTime + progressDeadlineSeconds``. The clock is a
parameter (``now``), like the controller's ``nowFn``, so deadlines are tested without waiting.

The ``sim`` backend runs this judge as its controller does; the orchestrator runs it on what
a backend reports, as a backstop for a cluster whose controller never answers.

10 replicas (maxUnavailable 2), a deadline of 600 s. A new ReplicaSet is created at 00:00:00,
pods come up at 00:00:05, then nothing moves:

>>> from datetime import UTC, datetime, timedelta
>>> from relman_deployer.rollout.conditions import AVAILABLE, describe
>>> t0 = datetime(2019, 1, 1, tzinfo=UTC)
>>> web = Rollout("web", replicas=10, max_unavailable=2, new_replica_set="web-5d4f8b7c9")
>>> s = new_replica_set_condition(web, DeploymentStatus(), created=True, now=t0)
>>> describe(s)
'Progressing True NewReplicaSetCreated: Created new replica set "web-5d4f8b7c9"'
>>> surged = DeploymentStatus(replicas=13, updated_replicas=3, ready_replicas=10,
...                           available_replicas=10)
>>> s = sync_rollout_status(web, s, surged, now=t0 + timedelta(seconds=5))
>>> describe(s)
'Progressing True ReplicaSetUpdated: ReplicaSet "web-5d4f8b7c9" is progressing.'
>>> s = sync_rollout_status(web, s, surged, now=t0 + timedelta(seconds=605))  # 600 s exactly
>>> describe(s), requeue_after(web, s, now=t0 + timedelta(seconds=605))
('Progressing True ReplicaSetUpdated: ReplicaSet "web-5d4f8b7c9" is progressing.', 0.0)
>>> s = sync_rollout_status(web, s, surged, now=t0 + timedelta(seconds=605.5))
>>> describe(s)
'Progressing False ProgressDeadlineExceeded: ReplicaSet "web-5d4f8b7c9" has timed out progressing.'
>>> describe(s, AVAILABLE)
'Available True MinimumReplicasAvailable: Deployment has minimum availability.'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from relman_deployer.rollout.arithmetic import deployment_complete
from relman_deployer.rollout.conditions import (
    AVAILABLE,
    FALSE,
    FOUND_NEW_REPLICA_SET,
    MINIMUM_REPLICAS_AVAILABLE,
    MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_REPLICA_SET_AVAILABLE,
    NEW_REPLICA_SET_CREATED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    REPLICA_SET_UPDATED,
    TRUE,
    DeploymentStatus,
    get_condition,
    new_condition,
    remove_condition,
    set_condition,
)


@dataclass(frozen=True)
class Rollout:
    """What the judge reads of the Deployment itself.

    ``max_unavailable``: resolved (:func:`~relman_deployer.rollout.arithmetic.max_unavailable`);
    None judges no ``Available`` condition. ``progress_deadline_seconds``: None is a Deployment
    without a deadline (no ``Progressing`` condition). ``new_replica_set``: the name the
    messages use ("" before the new ReplicaSet exists: they name the Deployment).
    """

    name: str
    replicas: int
    max_unavailable: int | None = None
    progress_deadline_seconds: int | None = 600
    new_replica_set: str = ""

    @property
    def has_progress_deadline(self) -> bool:
        return self.progress_deadline_seconds is not None

    def subject(self) -> str:
        """What the Progressing messages are about: the new ReplicaSet, else the Deployment."""
        if self.new_replica_set:
            return f'ReplicaSet "{self.new_replica_set}"'
        return f'Deployment "{self.name}"'


def deployment_progressing(old: DeploymentStatus, new: DeploymentStatus) -> bool:
    """``DeploymentProgressing``: did the rollout move forward from ``old`` to ``new``?

    >>> before = DeploymentStatus(replicas=4, updated_replicas=1, ready_replicas=3,
    ...                           available_replicas=3)
    >>> deployment_progressing(before, replace(before, replicas=3))  # an old pod went
    True
    >>> deployment_progressing(before, replace(before, available_replicas=2))  # one got worse
    False
    """
    old_old_pods = old.replicas - old.updated_replicas
    new_old_pods = new.replicas - new.updated_replicas
    return (
        new.updated_replicas > old.updated_replicas
        or new_old_pods < old_old_pods
        or new.ready_replicas > old.ready_replicas
        or new.available_replicas > old.available_replicas
    )


def deployment_timed_out(rollout: Rollout, status: DeploymentStatus, now: datetime) -> bool:
    """``DeploymentTimedOut``: strictly more than the deadline since the last progress.

    A ``NewReplicaSetAvailable`` condition never times out; a ``ProgressDeadlineExceeded`` one
    stays timed out.
    """
    if rollout.progress_deadline_seconds is None:
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.reason == NEW_REPLICA_SET_AVAILABLE:
        return False
    if condition.reason == PROGRESS_DEADLINE_EXCEEDED:
        return True
    deadline = condition.last_update_time + timedelta(seconds=rollout.progress_deadline_seconds)
    return deadline < now


def new_replica_set_condition(
    rollout: Rollout, status: DeploymentStatus, *, created: bool, now: datetime
) -> DeploymentStatus:
    """The Progressing condition ``getNewReplicaSet`` records for the new ReplicaSet.

    A ReplicaSet it had to create: ``NewReplicaSetCreated``. One that already exists (the
    template of an earlier ReplicaSet, e.g. a rollback): ``FoundNewReplicaSet``, but only when
    there is no Progressing condition yet; otherwise the condition goes on as it was.
    """
    if not rollout.has_progress_deadline:
        return status
    name = rollout.new_replica_set
    if created:
        message = f'Created new replica set "{name}"'
        reason = NEW_REPLICA_SET_CREATED
    elif get_condition(status, PROGRESSING) is None:
        message = f'Found new replica set "{name}"'
        reason = FOUND_NEW_REPLICA_SET
    else:
        return status
    return set_condition(status, new_condition(PROGRESSING, TRUE, reason, message, now))


def calculate_status(
    rollout: Rollout, previous: DeploymentStatus, counts: DeploymentStatus, now: datetime
) -> DeploymentStatus:
    """``calculateStatus``: the counts of ``counts``, the conditions of ``previous``, and the
    Available condition: at least ``replicas - maxUnavailable`` pods available."""
    status = replace(counts, conditions=previous.conditions)
    if rollout.max_unavailable is None:
        return status
    if status.available_replicas >= rollout.replicas - rollout.max_unavailable:
        condition = new_condition(
            AVAILABLE,
            TRUE,
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        condition = new_condition(
            AVAILABLE,
            FALSE,
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    return set_condition(status, condition)


def sync_rollout_status(
    rollout: Rollout, previous: DeploymentStatus, counts: DeploymentStatus, now: datetime
) -> DeploymentStatus:
    """``syncRolloutStatus``: the status to write after a sync that counted ``counts``.

    ``previous`` is the status written before (its counts are what progress is measured
    against). Complete, else progressing, else timed out, checked in that order; once complete
    (``NewReplicaSetAvailable`` and no old pods) nothing is estimated any more.
    """
    status = calculate_status(rollout, previous, counts, now)
    if not rollout.has_progress_deadline:
        status = remove_condition(status, PROGRESSING)
    current = get_condition(previous, PROGRESSING)
    complete_before = (
        status.replicas == status.updated_replicas
        and current is not None
        and current.reason == NEW_REPLICA_SET_AVAILABLE
    )
    if not rollout.has_progress_deadline or complete_before:
        return status
    subject = rollout.subject()
    if deployment_complete(
        rollout.replicas, status.updated_replicas, status.replicas, status.available_replicas
    ):
        message = f"{subject} has successfully progressed."
        condition = new_condition(PROGRESSING, TRUE, NEW_REPLICA_SET_AVAILABLE, message, now)
        return set_condition(status, condition)
    if deployment_progressing(previous, status):
        # Progress refreshes lastUpdateTime even with the same reason, which
        # SetDeploymentCondition would not: so remove, then set (keeping lastTransitionTime
        # while the condition stays True).
        message = f"{subject} is progressing."
        condition = new_condition(PROGRESSING, TRUE, REPLICA_SET_UPDATED, message, now)
        if current is not None:
            if current.status == TRUE:
                condition = replace(condition, last_transition_time=current.last_transition_time)
            status = remove_condition(status, PROGRESSING)
        return set_condition(status, condition)
    if deployment_timed_out(rollout, status, now):
        message = f"{subject} has timed out progressing."
        condition = new_condition(PROGRESSING, FALSE, PROGRESS_DEADLINE_EXCEEDED, message, now)
        return set_condition(status, condition)
    return status


def requeue_after(rollout: Rollout, status: DeploymentStatus, now: datetime) -> float | None:
    """``requeueStuckDeployment``: seconds until a stuck rollout must be judged again.

    None when no check is due: no deadline, no Progressing condition, complete, or timed out
    already; otherwise the time left until ``lastUpdateTime + progressDeadlineSeconds`` (0 once
    it has passed). The controller re-checks at once when less than a second is left and adds
    a second against timer skew otherwise; a caller adds the margin it needs, since the
    rollout times out only strictly after the deadline.
    """
    condition = get_condition(status, PROGRESSING)
    if rollout.progress_deadline_seconds is None or condition is None:
        return None
    complete = deployment_complete(
        rollout.replicas, status.updated_replicas, status.replicas, status.available_replicas
    )
    if complete or condition.reason == PROGRESS_DEADLINE_EXCEEDED:
        return None
    deadline = condition.last_update_time + timedelta(seconds=rollout.progress_deadline_seconds)
    return max((deadline - now).total_seconds(), 0.0)
