"""The ``sim`` backend: an in-process cluster that rolls out like the Deployment controller.

Per app a namespace ``relman-<app>``; per service a Deployment whose ReplicaSets are named
``<service>-<pod-template-hash>`` and whose pods are ``<replicaset>-<5 chars>``, each on its own
node ``instance-<12 hex>``. The controller runs :func:`relman_deployer.rollout.rolling_step`
one pass at a time (scale the new ReplicaSet up if allowed, else old ones down) and every scale
goes through :meth:`SimBackend._scale_replica_set_and_record_event`, which records exactly one
``ScalingReplicaSet`` event, as ``scaleReplicaSetAndRecordEvent`` does in Kubernetes. After each
pass the Deployment's status is written by the progress judge
(:func:`relman_deployer.rollout.sync_rollout_status`): its counts and its ``Progressing`` and
``Available`` conditions, as ``syncRolloutStatus`` writes them. A rollout that stops moving is
judged again when its progress deadline passes (a timer, as ``requeueStuckDeployment`` does),
so it fails with ``ProgressDeadlineExceeded`` without anybody polling.

Pods take ``pod_delay`` seconds from creation to ready (half to pull and start, half to pass
readiness). The pods one sync of a ReplicaSet creates form a batch that steps together: they
become ready at the same moment and the Deployment controller then runs once for all of them,
as it does when the ReplicaSet controller reports them in one status update (one controller
pass per pod would take twice the ScalingReplicaSet steps a real cluster takes). Nothing runs
a task per pod: batch steps are event-loop timer callbacks (``call_soon`` when ``pod_delay``
is 0), and all state changes happen synchronously inside them, so there are no locks and no
partial states to observe.

Failures are chosen by the release's environment, visibly: ``RELMAN_SIM_FAIL=crash`` makes the
new pods crash-loop (``BackOff`` every ``retry_interval`` seconds, restarts counted) and
``RELMAN_SIM_FAIL=unready`` makes them run but fail readiness (``Unhealthy``). The variable is
part of the pod template, so pods of earlier templates stay healthy and a rollback to the
previous release scales its old ReplicaSet (same template hash) back up.

State lives in memory only; a restarted Deployer re-applies its release and the sim builds it.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from relman_common.clock import Clock, utcnow
from relman_common.errors import InvalidArgument, Unavailable
from relman_common.manifest import Service

from relman_deployer.backends.base import (
    AppSpec,
    BackendEvent,
    Observation,
    RolloutStatus,
    ServiceStatus,
    check_spec,
)
from relman_deployer.backends.sim_names import generated_suffix, node_name, template_hash
from relman_deployer.rollout import (
    DeploymentStatus,
    ReplicaSetCounts,
    RollingStrategy,
    Rollout,
    max_unavailable,
    new_replica_set_condition,
    requeue_after,
    rolling_step,
    sync_rollout_status,
)

FAIL_ENV = "RELMAN_SIM_FAIL"
FAIL_MODES = ("", "crash", "unready")
CONTAINER = "main"
# ReplicaSets at 0 replicas kept per Deployment (spec.revisionHistoryLimit's default).
REVISION_HISTORY_LIMIT = 10
# Bound on controller passes per sync; every pass scales something, so this is never reached
# unless the arithmetic is broken, and then the sim stops instead of spinning.
_MAX_PASSES = 10_000
# A stuck Deployment is judged again this long after its deadline: it times out only strictly
# after ``lastUpdateTime + progressDeadlineSeconds`` (the controller waits a whole second).
_RECHECK_MARGIN = 0.02


@dataclass(eq=False)
class _Pod:
    name: str
    node: str
    seq: int
    ready: bool = False
    restarts: int = 0
    batch: _PodBatch | None = None  # while it waits for its next step


@dataclass(eq=False)
class _PodBatch:
    """The pods one sync of a ReplicaSet created: they pull, start and get ready together."""

    pods: list[_Pod] = field(default_factory=list)
    timer: asyncio.Handle | None = None


@dataclass(eq=False)
class _ReplicaSet:
    name: str
    template_hash: str
    image: str
    fail: str
    seq: int
    template: dict[str, object]
    replicas: int = 0
    pods: dict[str, _Pod] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return sum(1 for pod in self.pods.values() if pod.ready)

    def counts(self) -> ReplicaSetCounts:
        return ReplicaSetCounts(self.name, self.replicas, self.available)


@dataclass(eq=False)
class _Deployment:
    name: str
    spec: Service
    current_hash: str
    progress_deadline_seconds: int
    replica_sets: dict[str, _ReplicaSet] = field(default_factory=dict)
    # The status as the controller last wrote it (counts and conditions).
    written: DeploymentStatus = field(default_factory=DeploymentStatus)
    # The current ReplicaSet was created by the last apply and no sync has recorded it yet.
    created_replica_set: bool = False
    # The progress check of a stuck rollout (requeueStuckDeployment).
    recheck: asyncio.TimerHandle | None = None

    @property
    def current(self) -> _ReplicaSet:
        return self.replica_sets[self.current_hash]

    def old(self) -> list[_ReplicaSet]:
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
        )


_END: Any = object()


class SimObserver:
    """One observer of one app: its own queue of everything published from its creation on.

    An async iterator (and ``aclose()``-able, so ``contextlib.aclosing`` works). It stops
    when closed or when the backend closes. Dropping it without closing also unsubscribes.
    """

    def __init__(self, observers: weakref.WeakSet[SimObserver], first: RolloutStatus) -> None:
        self._observers = observers
        self._queue: deque[Observation] = deque([first])
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        observers.add(self)

    def push(self, item: Observation) -> None:
        if self._closed:
            return
        self._queue.append(item)
        self._wake()

    def end(self) -> None:
        self._closed = True
        self._observers.discard(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> SimObserver:
        return self

    async def __anext__(self) -> Observation:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Unsubscribe; what was queued is dropped and iteration stops."""
        self._queue.clear()
        self.end()


class _App:
    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        self.spec: AppSpec | None = None
        self.deployments: dict[str, _Deployment] = {}
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


def validate_spec(spec: AppSpec) -> str:
    """Raise :class:`InvalidArgument` for a spec the sim cannot run; return the failure mode."""
    check_spec(spec)
    fail = spec.env.get(FAIL_ENV, "")
    if fail not in FAIL_MODES:
        raise InvalidArgument(f"{FAIL_ENV} must be crash or unready, not {fail!r}")
    for service in spec.services:
        if not service.image:
            raise InvalidArgument(f"service {service.name} has no image")
        try:
            RollingStrategy(service.max_surge_percent, service.max_unavailable_percent).validate()
        except InvalidArgument as err:
            raise InvalidArgument(f"service {service.name}: {err}") from None
    return fail


class SimBackend:
    """An in-process cluster implementing :class:`relman_deployer.backends.base.Backend`."""

    name = "sim"

    def __init__(
        self,
        *,
        pod_delay: float = 1.0,
        retry_interval: float | None = None,
        seed: int | None = None,
        clock: Clock = utcnow,
        namespace_prefix: str = "relman",
    ) -> None:
        """``pod_delay``: seconds from pod creation to ready (0: as fast as the loop runs).

        ``retry_interval``: seconds between repeated BackOff/Unhealthy events of failing pods
        (default ``pod_delay``, at least 0.05 s so a failing pod never spins the loop).
        ``seed`` makes generated names repeatable; ``clock`` stamps events.
        """
        if pod_delay < 0:
            raise InvalidArgument("pod_delay must not be negative")
        self.pod_delay = float(pod_delay)
        self.retry_interval = (
            max(self.pod_delay, 0.05) if retry_interval is None else float(retry_interval)
        )
        if self.retry_interval <= 0:
            raise InvalidArgument("retry_interval must be positive")
        self._rng = random.Random(seed)
        self._clock = clock
        self._prefix = namespace_prefix
        self._apps: dict[str, _App] = {}
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- the Backend interface ---------------------------------------------------------------

    async def apply(self, spec: AppSpec) -> None:
        """Make ``spec`` the desired state of its app; returns once the controller has run."""
        if self._closed:
            raise Unavailable("the sim backend is closed")
        fail = validate_spec(spec)
        self._loop = asyncio.get_running_loop()
        app = self._app(spec.app)
        wanted = {service.name for service in spec.services}
        for gone in [name for name in app.deployments if name not in wanted]:
            self._delete_deployment(app, app.deployments.pop(gone))
        app.spec = spec
        for service in spec.services:
            template = pod_template(spec, service)
            dep = app.deployments.get(service.name)
            if dep is None:
                hash_ = template_hash(template)
                dep = app.deployments[service.name] = _Deployment(
                    service.name, service, hash_, spec.progress_deadline_seconds
                )
            # The existing ReplicaSet of this template (a rollback), or a new one; a hash that
            # another template already owns is moved away from (``collisionCount``).
            collisions = 0
            hash_ = template_hash(template)
            while hash_ in dep.replica_sets and dep.replica_sets[hash_].template != template:
                collisions += 1
                hash_ = template_hash(template, collisions)
            dep.spec = service
            dep.progress_deadline_seconds = spec.progress_deadline_seconds
            dep.current_hash = hash_
            if hash_ not in dep.replica_sets:
                dep.created_replica_set = True
                dep.replica_sets[hash_] = _ReplicaSet(
                    name=f"{service.name}-{hash_}",
                    template_hash=hash_,
                    image=service.image,
                    fail=fail,
                    seq=self._next_seq(),
                    template=template,
                )
        self._sync_app(app)

    def observe(self, app: str) -> SimObserver:
        """Subscribe now (before :meth:`apply`, to miss nothing); the first item is a status."""
        state = self._app(app)
        observer = SimObserver(state.observers, state.status())
        if self._closed:
            observer.end()
        return observer

    async def close(self) -> None:
        """Stop every pod timer and end every observer. The backend cannot be used again."""
        self._closed = True
        for app in self._apps.values():
            for dep in app.deployments.values():
                _stop_recheck(dep)
                for rs in dep.replica_sets.values():
                    for pod in rs.pods.values():
                        _cancel(pod)
            for observer in list(app.observers):
                observer.end()

    # -- inspection (tests, debugging) ------------------------------------------------------

    def status(self, app: str) -> RolloutStatus:
        return self._app(app).status()

    def replica_sets(self, app: str, service: str) -> dict[str, int]:
        """``{replicaset name: spec.replicas}`` of one service, oldest first."""
        dep = self._app(app).deployments.get(service)
        if dep is None:
            return {}
        ordered = sorted(dep.replica_sets.values(), key=lambda r: r.seq)
        return {rs.name: rs.replicas for rs in ordered}

    def observer_count(self, app: str) -> int:
        return len(self._app(app).observers)

    def pending_timers(self) -> int:
        """Pods waiting for their next step (0 once the backend is closed)."""
        return sum(
            1
            for app in self._apps.values()
            for dep in app.deployments.values()
            for rs in dep.replica_sets.values()
            for pod in rs.pods.values()
            if pod.batch is not None and pod.batch.timer is not None
        )

    def pods(self, app: str, service: str) -> dict[str, str]:
        """``{pod name: replicaset name}`` of one service."""
        dep = self._app(app).deployments.get(service)
        if dep is None:
            return {}
        return {p: rs.name for rs in dep.replica_sets.values() for p in rs.pods}

    # -- the controllers ---------------------------------------------------------------------

    def _app(self, name: str) -> _App:
        app = self._apps.get(name)
        if app is None:
            app = self._apps[name] = _App(name, f"{self._prefix}-{name}")
        return app

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _sync_app(self, app: _App) -> None:
        """Run every Deployment's controller to a standstill, then publish the status."""
        if not self._closed:
            for dep in app.deployments.values():
                self._sync_deployment(app, dep)
        self._publish_status(app)

    def _sync_deployment(self, app: _App, dep: _Deployment) -> None:
        """Controller passes until nothing moves; after each one the status is written."""
        now: datetime | None = None  # the time of this sync, taken after its first scale
        for _ in range(_MAX_PASSES):
            current = dep.current
            by_name = {rs.name: rs for rs in dep.replica_sets.values()}
            scales = rolling_step(
                dep.spec.replicas,
                dep.strategy,
                current.counts(),
                [rs.counts() for rs in dep.old()],
            )
            for scale in scales:
                rs = by_name[scale.name]
                if self._scale_replica_set_and_record_event(app, dep, rs, scale.replicas):
                    self._sync_replica_set(app, rs)
            if now is None:
                now = self._clock()
            self._sync_rollout_status(dep, now)
            if not scales:
                break
        if dep.status().complete:
            self._cleanup_deployment(dep)
        if now is not None:
            self._requeue_stuck_deployment(app, dep, now)

    def _sync_rollout_status(self, dep: _Deployment, now: datetime) -> None:
        """Write the Deployment's status as ``syncRolloutStatus`` does (the one judge)."""
        rollout = dep.rollout()
        status = new_replica_set_condition(
            rollout, dep.written, created=dep.created_replica_set, now=now
        )
        dep.created_replica_set = False
        dep.written = sync_rollout_status(rollout, status, dep.counts(), now)

    def _requeue_stuck_deployment(self, app: _App, dep: _Deployment, now: datetime) -> None:
        """Judge ``dep`` again once its progress deadline has passed, unless it moves first."""
        _stop_recheck(dep)
        after = requeue_after(dep.rollout(), dep.written, now)
        if after is None or self._closed or self._loop is None:
            return
        dep.recheck = self._loop.call_later(after + _RECHECK_MARGIN, self._recheck, app, dep)

    def _recheck(self, app: _App, dep: _Deployment) -> None:
        dep.recheck = None
        if self._closed or app.deployments.get(dep.name) is not dep:
            return
        self._sync_deployment(app, dep)
        self._publish_status(app)

    def _scale_replica_set_and_record_event(
        self, app: _App, dep: _Deployment, rs: _ReplicaSet, replicas: int
    ) -> bool:
        """The one place a ReplicaSet is scaled; records exactly one ScalingReplicaSet event."""
        if rs.replicas == replicas:
            return False
        direction = "up" if replicas > rs.replicas else "down"
        rs.replicas = replicas
        message = f"Scaled {direction} replica set {rs.name} to {replicas}"
        self._emit(app, dep.name, "ScalingReplicaSet", message)
        return True

    def _sync_replica_set(self, app: _App, rs: _ReplicaSet) -> None:
        """The ReplicaSet controller: create or delete pods until they match ``replicas``.

        The pods one sync creates are one batch: scheduled together, they get ready together.
        """
        diff = rs.replicas - len(rs.pods)
        if diff > 0:
            batch = _PodBatch([self._create_pod(app, rs) for _ in range(diff)])
            for pod in batch.pods:
                pod.batch = batch
            batch.timer = self._later(self.pod_delay / 2, self._pods_started, app, rs, batch)
        if diff < 0:
            # getPodsToDelete: not-ready before ready, more restarts first, newest first.
            doomed = sorted(rs.pods.values(), key=lambda p: (p.ready, -p.restarts, -p.seq))
            for pod in doomed[:-diff]:
                del rs.pods[pod.name]
                _cancel(pod)
                self._emit(app, rs.name, "SuccessfulDelete", f"Deleted pod: {pod.name}")
                self._emit(app, pod.name, "Killing", f"Stopping container {CONTAINER}")

    def _create_pod(self, app: _App, rs: _ReplicaSet) -> _Pod:
        name = f"{rs.name}-{generated_suffix(self._rng)}"
        while name in rs.pods:
            name = f"{rs.name}-{generated_suffix(self._rng)}"
        pod = _Pod(name=name, node=node_name(self._rng), seq=self._next_seq())
        rs.pods[name] = pod
        self._emit(app, rs.name, "SuccessfulCreate", f"Created pod: {name}")
        self._emit(
            app,
            name,
            "Scheduled",
            f"Successfully assigned {app.namespace}/{name} to {pod.node}",
        )
        self._emit(app, name, "Pulling", f'Pulling image "{rs.image}"')
        return pod

    def _pods_started(self, app: _App, rs: _ReplicaSet, batch: _PodBatch) -> None:
        batch.timer = None
        if self._closed or not batch.pods:
            return
        for pod in batch.pods:
            self._emit(app, pod.name, "Pulled", f'Successfully pulled image "{rs.image}"')
            self._emit(app, pod.name, "Created", f"Created container {CONTAINER}")
            self._emit(app, pod.name, "Started", f"Started container {CONTAINER}")
        batch.timer = self._later(self.pod_delay / 2, self._pods_probed, app, rs, batch)

    def _pods_probed(self, app: _App, rs: _ReplicaSet, batch: _PodBatch) -> None:
        """The batch's containers have run for a while: they are ready, or fail again."""
        batch.timer = None
        if self._closed or not batch.pods:
            return
        if rs.fail == "crash":
            for pod in batch.pods:
                pod.restarts += 1
                self._emit(app, pod.name, "BackOff", "Back-off restarting failed container")
        elif rs.fail == "unready":
            for pod in batch.pods:
                self._emit(
                    app,
                    pod.name,
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                )
        else:
            for pod in batch.pods:
                pod.ready = True
                pod.batch = None
            batch.pods.clear()
            self._sync_app(app)  # one status update of the ReplicaSet, one controller run
            return
        batch.timer = self._later(self.retry_interval, self._pods_probed, app, rs, batch)
        self._publish_status(app)

    def _delete_deployment(self, app: _App, dep: _Deployment) -> None:
        """A service left the spec: its Deployment is deleted and the GC kills its pods."""
        _stop_recheck(dep)
        for rs in dep.replica_sets.values():
            for pod in rs.pods.values():
                _cancel(pod)
                self._emit(app, pod.name, "Killing", f"Stopping container {CONTAINER}")
            rs.pods.clear()

    def _cleanup_deployment(self, dep: _Deployment) -> None:
        """``cleanupDeployment``: keep at most REVISION_HISTORY_LIMIT old, empty ReplicaSets."""
        empty = [rs for rs in dep.old() if rs.replicas == 0 and not rs.pods]
        for rs in empty[: max(0, len(empty) - REVISION_HISTORY_LIMIT)]:
            del dep.replica_sets[rs.template_hash]

    # -- output ------------------------------------------------------------------------------

    def _later(
        self, delay: float, callback: Callable[[_App, _ReplicaSet, _PodBatch], None], *args: Any
    ) -> asyncio.Handle:
        assert self._loop is not None  # set by apply(), the only way pods come to exist
        if delay <= 0:
            return self._loop.call_soon(callback, *args)
        return self._loop.call_later(delay, callback, *args)

    def _emit(self, app: _App, obj: str, reason: str, message: str) -> None:
        event = BackendEvent(
            time=self._clock(), source=f"system/k8s/{obj}", reason=reason, message=message
        )
        for observer in list(app.observers):
            observer.push(event)

    def _publish_status(self, app: _App) -> None:
        status = app.status()
        if status == app.last_status:
            return
        app.last_status = status
        for observer in list(app.observers):
            observer.push(status)


def _cancel(pod: _Pod) -> None:
    """The pod is gone: it leaves its batch, whose timer stops once no pod is left in it."""
    batch, pod.batch = pod.batch, None
    if batch is None:
        return
    batch.pods.remove(pod)
    if not batch.pods and batch.timer is not None:
        batch.timer.cancel()
        batch.timer = None


def _stop_recheck(dep: _Deployment) -> None:
    if dep.recheck is not None:
        dep.recheck.cancel()
        dep.recheck = None
