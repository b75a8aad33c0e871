"""The sim's kubelet: the pods a ReplicaSet sync creates run as one batch, on timers.

A batch pulls and starts its containers ``pod_delay / 2`` seconds after creation, and after as
long again its pods are ready together: the Deployment controller then runs once for all of
them. A ReplicaSet whose template says ``RELMAN_SIM_FAIL=crash`` crash-loops instead (BackOff,
restarts counted) and one that says ``unready`` fails its readiness probe (Unhealthy), again
every ``retry_interval`` seconds. Each step is an event-loop timer callback that changes state
synchronously: there are no tasks, locks or partial states.
"""

from __future__ import annotations

from collections.abc import Callable

from relman_deployer.backends.sim.cluster import Cluster
from relman_deployer.backends.sim.model import CONTAINER, App, Pod, PodBatch, ReplicaSet


class Kubelet:
    def __init__(
        self,
        cluster: Cluster,
        *,
        pod_delay: float,
        retry_interval: float,
        on_ready: Callable[[App], None],
    ) -> None:
        """``on_ready(app)`` runs when a batch of ``app``'s pods gets ready: one status
        update of their ReplicaSet, so one run of the controllers."""
        self._cluster = cluster
        self.pod_delay = pod_delay
        self.retry_interval = retry_interval
        self._on_ready = on_ready

    def run(self, app: App, rs: ReplicaSet, pods: list[Pod]) -> None:
        """Start ``pods``, just created in ``rs`` by one sync, as one batch."""
        batch = PodBatch(pods)
        for pod in batch.pods:
            pod.batch = batch
        batch.timer = self._cluster.later(self.pod_delay / 2, self._started, app, rs, batch)

    def _started(self, app: App, rs: ReplicaSet, batch: PodBatch) -> None:
        cluster = self._cluster
        batch.timer = None
        if cluster.closed or not batch.pods:
            return
        for pod in batch.pods:
            cluster.emit(app, pod.name, "Pulled", f'Successfully pulled image "{rs.image}"')
            cluster.emit(app, pod.name, "Created", f"Created container {CONTAINER}")
            cluster.emit(app, pod.name, "Started", f"Started container {CONTAINER}")
        batch.timer = cluster.later(self.pod_delay / 2, self._probed, app, rs, batch)

    def _probed(self, app: App, rs: ReplicaSet, batch: PodBatch) -> None:
        """The batch's containers have run for a while: they are ready, or fail again."""
        cluster = self._cluster
        batch.timer = None
        if cluster.closed or not batch.pods:
            return
        if rs.fail == "crash":
            for pod in batch.pods:
                pod.restarts += 1
                cluster.emit(app, pod.name, "BackOff", "Back-off restarting failed container")
        elif rs.fail == "unready":
            for pod in batch.pods:
                cluster.emit(
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
            self._on_ready(app)  # one status update of the ReplicaSet, one controller run
            return
        batch.timer = cluster.later(self.retry_interval, self._probed, app, rs, batch)
        cluster.publish_status(app)
