"""The sim's Deployment and ReplicaSet controllers.

The Deployment controller runs :func:`relman_deployer.rollout.rolling_step` one pass at a time
(scale the new ReplicaSet up if allowed, else old ones down) until nothing moves; every scale
goes through :meth:`Controllers.scale_replica_set_and_record_event`, which records exactly one
``ScalingReplicaSet`` event, as ``scaleReplicaSetAndRecordEvent`` does in Kubernetes. After each
pass the Deployment's status is written by the progress judge
(:func:`relman_deployer.rollout.sync_rollout_status`), as ``syncRolloutStatus`` writes it, and a
rollout that stops moving is judged again when its progress deadline passes (a timer, as
``requeueStuckDeployment`` does). The ReplicaSet controller creates and deletes pods until they
match the ReplicaSet's replicas; the :class:`.pods.Kubelet` runs the pods it creates.
"""

from __future__ import annotations

from datetime import datetime

from relman_deployer.backends.sim.cluster import Cluster
from relman_deployer.backends.sim.model import CONTAINER, App, Deployment, Pod, ReplicaSet
from relman_deployer.backends.sim.names import generated_suffix, node_name
from relman_deployer.backends.sim.pods import Kubelet
from relman_deployer.rollout import (
    new_replica_set_condition,
    requeue_after,
    rolling_step,
    sync_rollout_status,
)

# ReplicaSets at 0 replicas kept per Deployment (spec.revisionHistoryLimit's default).
REVISION_HISTORY_LIMIT = 10
# Bound on controller passes per sync; every pass scales something, so this is never reached
# unless the arithmetic is broken, and then the sim stops instead of spinning.
_MAX_PASSES = 10_000
# A stuck Deployment is judged again this long after its deadline: it times out only strictly
# after ``lastUpdateTime + progressDeadlineSeconds`` (the controller waits a whole second).
_RECHECK_MARGIN = 0.02


class Controllers:
    def __init__(self, cluster: Cluster, *, pod_delay: float, retry_interval: float) -> None:
        self._cluster = cluster
        self.kubelet = Kubelet(
            cluster, pod_delay=pod_delay, retry_interval=retry_interval, on_ready=self.sync_app
        )

    # -- the Deployment controller -----------------------------------------------------------

    def sync_app(self, app: App) -> None:
        """Run every Deployment's controller to a standstill, then publish the status."""
        if not self._cluster.closed:
            for dep in app.deployments.values():
                self._sync_deployment(app, dep)
        self._cluster.publish_status(app)

    def _sync_deployment(self, app: App, dep: Deployment) -> None:
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
                if self.scale_replica_set_and_record_event(app, dep, rs, scale.replicas):
                    self._sync_replica_set(app, rs)
            if now is None:
                now = self._cluster.clock()
            self._sync_rollout_status(dep, now)
            if not scales:
                break
        if dep.status().complete:
            self._cleanup_deployment(dep)
        if now is not None:
            self._requeue_stuck_deployment(app, dep, now)

    def _sync_rollout_status(self, dep: Deployment, now: datetime) -> None:
        """Write the Deployment's status as ``syncRolloutStatus`` does (the one judge)."""
        rollout = dep.rollout()
        status = new_replica_set_condition(
            rollout, dep.written, created=dep.created_replica_set, now=now
        )
        dep.created_replica_set = False
        dep.written = sync_rollout_status(rollout, status, dep.counts(), now)

    def _requeue_stuck_deployment(self, app: App, dep: Deployment, now: datetime) -> None:
        """Judge ``dep`` again once its progress deadline has passed, unless it moves first."""
        dep.stop_recheck()
        after = requeue_after(dep.rollout(), dep.written, now)
        loop = self._cluster.loop
        if after is None or self._cluster.closed or loop is None:
            return
        dep.recheck = loop.call_later(after + _RECHECK_MARGIN, self._recheck, app, dep)

    def _recheck(self, app: App, dep: Deployment) -> None:
        dep.recheck = None
        if self._cluster.closed or app.deployments.get(dep.name) is not dep:
            return
        self._sync_deployment(app, dep)
        self._cluster.publish_status(app)

    def scale_replica_set_and_record_event(
        self, app: App, dep: Deployment, rs: ReplicaSet, replicas: int
    ) -> bool:
        """The one place a ReplicaSet is scaled; records exactly one ScalingReplicaSet event."""
        if rs.replicas == replicas:
            return False
        direction = "up" if replicas > rs.replicas else "down"
        rs.replicas = replicas
        message = f"Scaled {direction} replica set {rs.name} to {replicas}"
        self._cluster.emit(app, dep.name, "ScalingReplicaSet", message)
        return True

    def delete_deployment(self, app: App, dep: Deployment) -> None:
        """A service left the spec: its Deployment is deleted and the GC kills its pods."""
        dep.stop_recheck()
        for rs in dep.replica_sets.values():
            for pod in rs.pods.values():
                pod.stop()
                self._cluster.emit(app, pod.name, "Killing", f"Stopping container {CONTAINER}")
            rs.pods.clear()

    def _cleanup_deployment(self, dep: Deployment) -> None:
        """``cleanupDeployment``: keep at most REVISION_HISTORY_LIMIT old, empty ReplicaSets."""
        empty = [rs for rs in dep.old() if rs.replicas == 0 and not rs.pods]
        for rs in empty[: max(0, len(empty) - REVISION_HISTORY_LIMIT)]:
            del dep.replica_sets[rs.template_hash]

    # -- the ReplicaSet controller -----------------------------------------------------------

    def _sync_replica_set(self, app: App, rs: ReplicaSet) -> None:
        """Create or delete pods until they match ``replicas``.

        The pods one sync creates are one batch: scheduled together, they get ready together.
        """
        diff = rs.replicas - len(rs.pods)
        if diff > 0:
            self.kubelet.run(app, rs, [self._create_pod(app, rs) for _ in range(diff)])
        if diff < 0:
            # getPodsToDelete: not-ready before ready, more restarts first, newest first.
            doomed = sorted(rs.pods.values(), key=lambda p: (p.ready, -p.restarts, -p.seq))
            for pod in doomed[:-diff]:
                del rs.pods[pod.name]
                pod.stop()
                self._cluster.emit(app, rs.name, "SuccessfulDelete", f"Deleted pod: {pod.name}")
                self._cluster.emit(app, pod.name, "Killing", f"Stopping container {CONTAINER}")

    def _create_pod(self, app: App, rs: ReplicaSet) -> Pod:
        cluster = self._cluster
        name = f"{rs.name}-{generated_suffix(cluster.rng)}"
        while name in rs.pods:
            name = f"{rs.name}-{generated_suffix(cluster.rng)}"
        pod = Pod(name=name, node=node_name(cluster.rng), seq=cluster.next_seq())
        rs.pods[name] = pod
        cluster.emit(app, rs.name, "SuccessfulCreate", f"Created pod: {name}")
        cluster.emit(
            app,
            name,
            "Scheduled",
            f"Successfully assigned {app.namespace}/{name} to {pod.node}",
        )
        cluster.emit(app, name, "Pulling", f'Pulling image "{rs.image}"')
        return pod
