""":class:`SimBackend`: the :class:`relman_deployer.backends.base.Backend` interface over the
sim's cluster. ``apply`` writes the Deployments and their ReplicaSets as the API server would
take them, then lets the controllers run; ``observe`` subscribes to an app."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator

from relman_common.clock import Clock, utcnow
from relman_common.errors import InvalidArgument, Unavailable

from relman_deployer.backends.base import (
    AppSpec,
    ReleaseJob,
    ReleaseOutput,
    RolloutStatus,
    check_spec,
)
from relman_deployer.backends.sim import dryrun
from relman_deployer.backends.sim.cluster import Cluster
from relman_deployer.backends.sim.controllers import Controllers
from relman_deployer.backends.sim.model import (
    FAIL_ENV,
    FAIL_MODES,
    Deployment,
    ReplicaSet,
    pod_template,
)
from relman_deployer.backends.sim.names import template_hash
from relman_deployer.backends.sim.observer import SimObserver
from relman_deployer.backends.sim.oneoff import OneOffs
from relman_deployer.domain.plan import ObjectPlan
from relman_deployer.rollout import RollingStrategy


def validate_spec(spec: AppSpec) -> str:
    """Raise :class:`InvalidArgument` for a spec the sim cannot run; return the failure mode."""
    check_spec(spec)
    fail = spec.env.get(FAIL_ENV, "")
    if fail not in FAIL_MODES:
        modes = ", ".join(m for m in FAIL_MODES if m)
        raise InvalidArgument(f"{FAIL_ENV} must be one of {modes}, not {fail!r}")
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
        self._cluster = Cluster(
            clock=clock, rng=random.Random(seed), namespace_prefix=namespace_prefix
        )
        self._controllers = Controllers(
            self._cluster, pod_delay=self.pod_delay, retry_interval=self.retry_interval
        )
        self._oneoffs = OneOffs(self._cluster, self.pod_delay)

    # -- the Backend interface ---------------------------------------------------------------

    async def apply(self, spec: AppSpec) -> None:
        """Make ``spec`` the desired state of its app; returns once the controller has run."""
        cluster = self._cluster
        if cluster.closed:
            raise Unavailable("the sim backend is closed")
        fail = validate_spec(spec)
        cluster.loop = asyncio.get_running_loop()
        app = cluster.app(spec.app)
        wanted = {service.name for service in spec.services}
        for gone in [name for name in app.deployments if name not in wanted]:
            self._controllers.delete_deployment(app, app.deployments.pop(gone))
        app.spec = spec
        for service in spec.services:
            template = pod_template(spec, service)
            dep = app.deployments.get(service.name)
            if dep is None:
                hash_ = template_hash(template)
                dep = app.deployments[service.name] = Deployment(
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
                dep.replica_sets[hash_] = ReplicaSet(
                    name=f"{service.name}-{hash_}",
                    template_hash=hash_,
                    image=service.image,
                    fail=fail,
                    seq=cluster.next_seq(),
                    template=template,
                )
        self._controllers.sync_app(app)

    async def plan(self, spec: AppSpec) -> tuple[ObjectPlan, ...]:
        """What :meth:`apply` of ``spec`` would change, against what the sim holds; changes
        nothing (not even an empty namespace for an app it has never seen)."""
        if self._cluster.closed:
            raise Unavailable("the sim backend is closed")
        validate_spec(spec)
        app = self._cluster.apps.get(spec.app)
        held = app.spec if app is not None else None
        namespace = app.namespace if app is not None else self._cluster.namespace(spec.app)
        return dryrun.plan(held, spec, namespace)

    def observe(self, app: str) -> SimObserver:
        """Subscribe now (before :meth:`apply`, to miss nothing); the first item is a status."""
        state = self._cluster.app(app)
        observer = SimObserver(state.observers, state.status())
        if self._cluster.closed:
            observer.end()
        return observer

    async def run_release_command(self, job: ReleaseJob) -> AsyncGenerator[ReleaseOutput, None]:
        """A simulated one-off (:mod:`.oneoff`): exits 1 when the release's env holds
        ``RELMAN_SIM_FAIL=release``, else 0."""
        if self._cluster.closed:
            raise Unavailable("the sim backend is closed")
        fail = validate_spec(job.spec)
        async with contextlib.aclosing(self._oneoffs.run(job, fail)) as items:
            async for item in items:
                yield item

    async def pod_logs(self, app: str, pod: str, container: str, lines: int) -> list[str]:
        """The sim runs no containers, so they write nothing."""
        return []

    async def close(self) -> None:
        """Stop every pod timer and end every observer. The backend cannot be used again."""
        self._cluster.closed = True
        for app in self._cluster.apps.values():
            for dep in app.deployments.values():
                dep.stop_recheck()
                for rs in dep.replica_sets.values():
                    for pod in rs.pods.values():
                        pod.stop()
            for observer in list(app.observers):
                observer.end()

    # -- inspection (tests, debugging) ------------------------------------------------------

    def release_commands(self) -> dict[str, str]:
        """``{Job name: running | succeeded | failed | timed-out | stopped}`` of every release
        command run so far."""
        return dict(self._oneoffs.runs)

    def status(self, app: str) -> RolloutStatus:
        return self._cluster.app(app).status()

    def replica_sets(self, app: str, service: str) -> dict[str, int]:
        """``{replicaset name: spec.replicas}`` of one service, oldest first."""
        dep = self._cluster.app(app).deployments.get(service)
        if dep is None:
            return {}
        ordered = sorted(dep.replica_sets.values(), key=lambda r: r.seq)
        return {rs.name: rs.replicas for rs in ordered}

    def observer_count(self, app: str) -> int:
        return len(self._cluster.app(app).observers)

    def pending_timers(self) -> int:
        """Pods waiting for their next step (0 once the backend is closed)."""
        return sum(
            1
            for app in self._cluster.apps.values()
            for dep in app.deployments.values()
            for rs in dep.replica_sets.values()
            for pod in rs.pods.values()
            if pod.batch is not None and pod.batch.timer is not None
        )

    def pods(self, app: str, service: str) -> dict[str, str]:
        """``{pod name: replicaset name}`` of one service."""
        dep = self._cluster.app(app).deployments.get(service)
        if dep is None:
            return {}
        return {p: rs.name for rs in dep.replica_sets.values() for p in rs.pods}
