"""A Deployment's status and its conditions, and the helpers of ``util/deployment_util.go``
that read and write them (``NewDeploymentCondition``, ``GetDeploymentCondition``,
``SetDeploymentCondition``, ``RemoveDeploymentCondition``). Pure values; the progress judge
(:mod:`.progress`) decides which conditions to write."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

# Condition types and statuses (``apps/v1``).
PROGRESSING = "Progressing"
AVAILABLE = "Available"
TRUE = "True"
FALSE = "False"

# Reasons, as ``util/deployment_util.go`` names them.
NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"  # NewReplicaSetReason
FOUND_NEW_REPLICA_SET = "FoundNewReplicaSet"  # FoundNewRSReason
REPLICA_SET_UPDATED = "ReplicaSetUpdated"  # ReplicaSetUpdatedReason
NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"  # NewRSAvailableReason
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"  # TimedOutReason
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"


@dataclass(frozen=True)
class DeploymentCondition:
    """One entry of a Deployment's ``status.conditions``."""

    type: str
    status: str
    reason: str
    message: str
    last_update_time: datetime
    last_transition_time: datetime


@dataclass(frozen=True)
class DeploymentStatus:
    """The part of a Deployment's ``status`` the judge reads and writes.

    ``replicas`` counts the pods of every ReplicaSet, ``updated_replicas`` those of the new one.
    """

    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    conditions: tuple[DeploymentCondition, ...] = ()


def new_condition(
    type_: str, status: str, reason: str, message: str, now: datetime
) -> DeploymentCondition:
    """``NewDeploymentCondition``: both times are now."""
    return DeploymentCondition(type_, status, reason, message, now, now)


def get_condition(status: DeploymentStatus, type_: str) -> DeploymentCondition | None:
    """``GetDeploymentCondition``."""
    for condition in status.conditions:
        if condition.type == type_:
            return condition
    return None


def set_condition(status: DeploymentStatus, condition: DeploymentCondition) -> DeploymentStatus:
    """``SetDeploymentCondition``: the same status and reason again changes nothing (not even
    ``lastUpdateTime``); the same status with another reason keeps ``lastTransitionTime``.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2019, 1, 1, tzinfo=UTC)
    >>> s = set_condition(DeploymentStatus(), new_condition("Available", "True", "A", "", t0))
    >>> later = t0 + timedelta(seconds=1)
    >>> set_condition(s, new_condition("Available", "True", "A", "", later)) == s
    True
    >>> c = get_condition(set_condition(s, new_condition("Available", "True", "B", "", later)),
    ...                   "Available")
    >>> c.reason, c.last_update_time == later, c.last_transition_time == t0
    ('B', True, True)
    """
    current = get_condition(status, condition.type)
    if current is not None and (current.status, current.reason) == (
        condition.status,
        condition.reason,
    ):
        return status
    if current is not None and current.status == condition.status:
        condition = replace(condition, last_transition_time=current.last_transition_time)
    kept = tuple(c for c in status.conditions if c.type != condition.type)
    return replace(status, conditions=(*kept, condition))


def remove_condition(status: DeploymentStatus, type_: str) -> DeploymentStatus:
    """``RemoveDeploymentCondition``."""
    return replace(status, conditions=tuple(c for c in status.conditions if c.type != type_))


def describe(status: DeploymentStatus, type_: str = PROGRESSING) -> str:
    """One condition as ``kubectl describe`` lists it (with its reason and message)."""
    condition = get_condition(status, type_)
    if condition is None:
        return f"{type_} (none)"
    return f"{condition.type} {condition.status} {condition.reason}: {condition.message}"
