"""The one small interface every deployment backend implements (``sim``, ``kubernetes``).

A backend knows nothing about releases' history, leases or rollback policy: it makes an app
look like an :class:`AppSpec` and reports what the cluster does about it, as Kubernetes-worded
events and rollout status snapshots. The Deployer's orchestrator decides what it all means.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from relman_deployer.rollout.arithmetic import deployment_complete
from relman_deployer.rollout.progress import (
    AVAILABLE,
    PROGRESSING,
    DeploymentCondition,
    DeploymentStatus,
)

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/"
    grace: int = 5
    interval: int = 5
    timeout: int = 4


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a release, ready to become a Kubernetes Deployment."""

    name: str
    image: str
    replicas: int = 1
    command: str = ""
    port: int = 0
    health: HealthCheck | None = None
    # Percent of replicas, as in convox.yml:
    # maxUnavailable = 100 - minimum, maxSurge = maximum - 100.
    deployment_minimum: int = 50
    deployment_maximum: int = 200

    @property
    def max_unavailable_percent(self) -> int:
        return 100 - self.deployment_minimum

    @property
    def max_surge_percent(self) -> int:
        return self.deployment_maximum - 100


@dataclass(frozen=True)
class AppSpec:
    """The whole desired state of an app: exactly these services, from this release.

    Services that exist in the cluster but not here are removed. An AppSpec with no services
    removes the app's workloads (a rollback of an app that had no earlier release).
    """

    app: str
    release_id: str
    build_id: str
    env: Mapping[str, str] = field(default_factory=dict)
    services: tuple[ServiceSpec, ...] = ()
    # Each Deployment's progressDeadlineSeconds: the rollout fails when no pod moved forward
    # for longer (the orchestrator passes the deployment's timeout).
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS


@dataclass(frozen=True)
class BackendEvent:
    """Something the cluster did, worded as Kubernetes words it.

    ``source`` is ``system/k8s/<object name>`` (``system/k8s/web``,
    ``system/k8s/web-745f845dc``, ``system/k8s/web-745f845dc-rzl2q``); ``reason`` is the
    Kubernetes reason (ScalingReplicaSet, SuccessfulCreate, Scheduled, Pulling, Pulled, Created,
    Started, Killing, Unhealthy, BackOff, ...).
    """

    time: datetime
    source: str
    reason: str
    message: str


@dataclass(frozen=True)
class ServiceStatus:
    """Rollout progress of one service towards the release in the current AppSpec: the status
    its Deployment controller reports."""

    name: str
    desired: int
    # Pods of the current template / of any template / available.
    updated: int
    total: int
    available: int
    # Highest container restart count among the current template's pods.
    restarts: int = 0
    # Pods passing their readiness probe (``readyReplicas``).
    ready: int = 0
    # The Deployment's Progressing and Available conditions, as its controller set them.
    conditions: tuple[DeploymentCondition, ...] = ()

    @property
    def complete(self) -> bool:
        """The Deployment controller's DeploymentComplete."""
        return deployment_complete(self.desired, self.updated, self.total, self.available)

    @property
    def progressing(self) -> DeploymentCondition | None:
        return self.condition(PROGRESSING)

    @property
    def availability(self) -> DeploymentCondition | None:
        return self.condition(AVAILABLE)

    def condition(self, type_: str) -> DeploymentCondition | None:
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None

    def deployment_status(self) -> DeploymentStatus:
        """What the progress judge reads."""
        return DeploymentStatus(
            replicas=self.total,
            updated_replicas=self.updated,
            ready_replicas=self.ready,
            available_replicas=self.available,
            conditions=self.conditions,
        )


@dataclass(frozen=True)
class RolloutStatus:
    """A snapshot of the whole app against the release it is being moved to."""

    release_id: str
    services: tuple[ServiceStatus, ...]

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.services)


Observation = BackendEvent | RolloutStatus


class Backend(Protocol):
    """What the Deployer needs from a cluster."""

    name: str

    async def apply(self, spec: AppSpec) -> None:
        """Make ``spec`` the desired state of ``spec.app`` (idempotent)."""

    def observe(self, app: str) -> AsyncIterator[Observation]:
        """Events and status snapshots for ``app`` from now on, until the iterator is closed.

        Open it *before* :meth:`apply` so nothing is missed. A status snapshot is yielded at
        the start and whenever it changes (counts, restarts or conditions).
        """
        ...

    async def close(self) -> None:
        """Release connections, tasks and threads."""
