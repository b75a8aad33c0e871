"""The sim's objects, as the API server would hold them: pods, ReplicaSets, Deployments, and
per app its namespace with the observers of it. Plain state and what can be read off it; the
controllers in :mod:`.controllers` change it."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import asdict, dataclass, field

from relman_common.manifest import Service

from relman_deployer.backends.base import AppSpec, PodState, RolloutStatus, ServiceStatus
from relman_deployer.backends.sim.observer import SimObserver
from relman_deployer.rollout import (
    DeploymentStatus,
    ReplicaSetCounts,
    RollingStrategy,
    Rollout,
    max_unavailable,
)

# The release env key that makes a ReplicaSet's pods fail, and how they may fail
# (``release``: the release command exits 1; the pods themselves are healthy).
FAIL_ENV = "RELMAN_SIM_FAIL"
FAIL_MODES = ("", "crash", "unready", "pull", "oom", "release")
FAIL_RELEASE = "release"
CONTAINER = "main"


@dataclass(eq=False)
class Pod:
    name: str
    node: str
    seq: int
    ready: bool = False
    restarts: int = 0
    batch: PodBatch | None = None  # while it waits for its next step
    # What its container's status says (``PodState``): running once started; waiting with
    # a reason (ErrImagePull, ImagePullBackOff, CrashLoopBackOff) when it is not.
    phase: str = "Pending"
    state: str = ""
    reason: str = ""
    message: str = ""
    last_termination: str = ""
    exit_code: int | None = None

    def set_state(self, state: str, reason: str = "", message: str = "") -> None:
        self.state, self.reason, self.message = state, reason, message

    def pod_state(self, image: str) -> PodState:
        return PodState(
            name=self.name,
            phase=self.phase,
            ready=self.ready,
            restarts=self.restarts,
            container=CONTAINER,
            image=image,
            state=self.state,
            reason=self.reason,
            message=self.message,
            last_termination=self.last_termination,
            exit_code=self.exit_code,
        )

    def stop(self) -> None:
        """The pod is gone: it leaves its batch, whose timer stops once no pod is left in it."""
        batch, self.batch = self.batch, None
        if batch is None:
            return
        batch.pods.remove(self)
        if not batch.pods and batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None


@dataclass(eq=False)
class PodBatch:
    """The pods one sync of a ReplicaSet created: they pull, start and get ready together."""

    pods: list[Pod] = field(default_factory=list)
    timer: asyncio.Handle | None = None


@dataclass(eq=False)
class ReplicaSet:
    name: str
    template_hash: str
    image: str
    fail: str
    seq: int
    template: dict[str, object]
    replicas: int = 0
    pods: dict[str, Pod] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return sum(1 for pod in self.pods.values() if pod.ready)

    def counts(self) -> ReplicaSetCounts:
        return ReplicaSetCounts(self.name, self.replicas, self.available)


@dataclass(eq=False)
class Deployment:
    name: str
    spec: Service
    current_hash: str
    progress_deadline_seconds: int
    replica_sets: dict[str, ReplicaSet] = field(default_factory=dict)
    # The status as the controller last wrote it (counts and conditions).
    written: DeploymentStatus = field(default_factory=DeploymentStatus)
    # The current ReplicaSet was created by the last apply and no sync has recorded it yet.
    created_replica_set: bool = False
    # The progress check of a stuck rollout (requeueStuckDeployment).
    recheck: asyncio.TimerHandle | None = None

    @property
    def current(self) -> ReplicaSet:
        return self.replica_sets[self.current_hash]

    def old(self) -> list[ReplicaSet]:
        """The other ReplicaSets, oldest first (``ReplicaSetsByCreationTimestamp``)."""
        rs = [r for h, r in self.replica_sets.items() if h != self.current_hash]
        return sorted(rs, key=lambda r: r.seq)

    @property
    def strategy(self) -> RollingStrategy:
        return RollingStrategy(self.spec.max_surge_percent, self.spec.max_unavailable_percent)

    def rollout(self) -> Rollout:
        """What the progress judge reads of this Deployment."""
        return Rollout(
            name=self.name,
            replicas=self.spec.replicas,
            max_unavailable=max_unavailable(self.spec.replicas, self.strategy),
            progress_deadline_seconds=self.progress_deadline_seconds,
            new_replica_set=self.current.name,
        )

    def counts(self) -> DeploymentStatus:
        """The pods as they are now (``calculateStatus``; ready is available: no
        minReadySeconds)."""
        all_pods = [p for rs in self.replica_sets.values() for p in rs.pods.values()]
        available = sum(1 for p in all_pods if p.ready)
        return DeploymentStatus(
            replicas=len(all_pods),
            updated_replicas=len(self.current.pods),
            ready_replicas=available,
            available_replicas=available,
        )

    def status(self) -> ServiceStatus:
        written = self.written
        return ServiceStatus(
            name=self.name,
            desired=self.spec.replicas,
            updated=written.updated_replicas,
            total=written.replicas,
            available=written.available_replicas,
            restarts=max((p.restarts for p in self.current.pods.values()), default=0),
            ready=written.ready_replicas,
            conditions=written.conditions,
            pods=tuple(
                p.pod_state(self.current.image)
                for p in sorted(self.current.pods.values(), key=lambda p: p.name)
            ),
        )

    def stop_recheck(self) -> None:
        if self.recheck is not None:
            self.recheck.cancel()
            self.recheck = None


class App:
    """One app's namespace: its spec, its Deployments (one per service) and its observers."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        self.spec: AppSpec | None = None
        self.deployments: dict[str, Deployment] = {}
        self.observers: weakref.WeakSet[SimObserver] = weakref.WeakSet()
        self.last_status = RolloutStatus(release_id="", services=())

    def status(self) -> RolloutStatus:
        if self.spec is None:
            return RolloutStatus(release_id="", services=())
        services = tuple(self.deployments[s.name].status() for s in self.spec.services)
        return RolloutStatus(release_id=self.spec.release_id, services=services)


def pod_template(spec: AppSpec, service: Service) -> dict[str, object]:
    """Everything that shapes a pod of ``service`` in ``spec`` (and so its template hash).

    The replica count and the rollout strategy belong to the Deployment, not to its pods: a
    scale alone keeps the ReplicaSet, as in Kubernetes."""
    shape = asdict(service)
    shape["scale"] = {"cpu": service.scale.cpu, "memory": service.scale.memory}
    for key in ("minimum", "maximum", "internal"):
        del shape[key]
    return {
        "app": spec.app,
        "release": spec.release_id,
        "build": spec.build_id,
        "env": dict(sorted(spec.env.items())),
        "service": shape,
    }
