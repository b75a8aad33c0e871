"""The sim's kubelet: the pods a ReplicaSet sync creates run as one batch, on timers.

A batch pulls and starts its containers ``pod_delay / 2`` seconds after creation, and after as
long again its pods are ready together: the Deployment controller then runs once for all of
them. A ReplicaSet whose template says ``RELMAN_SIM_FAIL=crash`` crash-loops instead (BackOff,
restarts counted, CrashLoopBackOff), ``oom`` does the same with its containers OOMKilled,
``unready`` fails its readiness probe (Unhealthy), and ``pull`` never gets its image
(ErrImagePull, then ImagePullBackOff), again every ``retry_interval`` seconds, with the
kubelet's own Event words. Each step is an event-loop timer callback that changes state
synchronously: there are no tasks, locks or partial states.
"""

from __future__ import annotations

from collections.abc import Callable

from relman_deployer.backends.base import WARNING
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
        if rs.fail == "pull":
            self._pull_failed(app, rs, batch)
            return
        for pod in batch.pods:
            cluster.emit(app, pod.name, "Pulled", f'Successfully pulled image "{rs.image}"')
            cluster.emit(app, pod.name, "Created", f"Created container {CONTAINER}")
            cluster.emit(app, pod.name, "Started", f"Started container {CONTAINER}")
            pod.phase = "Running"
            pod.set_state("running")
        batch.timer = cluster.later(self.pod_delay / 2, self._probed, app, rs, batch)

    def _probed(self, app: App, rs: ReplicaSet, batch: PodBatch) -> None:
        """The batch's containers have run for a while: they are ready, or fail again."""
        cluster = self._cluster
        batch.timer = None
        if cluster.closed or not batch.pods:
            return
        if rs.fail in ("crash", "oom"):
            for pod in batch.pods:
                pod.restarts += 1
                pod.last_termination, pod.exit_code = (
                    ("OOMKilled", 137) if rs.fail == "oom" else ("Error", 1)
                )
                pod.set_state(
                    "waiting",
                    "CrashLoopBackOff",
                    f"back-off 10s restarting failed container={CONTAINER} "
                    f"pod={pod.name}_{app.namespace}",
                )
                cluster.emit(
                    app,
                    pod.name,
                    "BackOff",
                    "Back-off restarting failed container",
                    WARNING,
                )
        elif rs.fail == "pull":
            for pod in batch.pods:
                message = f'Back-off pulling image "{rs.image}"'
                pod.set_state("waiting", "ImagePullBackOff", message)
                cluster.emit(app, pod.name, "BackOff", message)
                cluster.emit(app, pod.name, "Failed", "Error: ImagePullBackOff", WARNING)
        elif rs.fail == "unready":
            for pod in batch.pods:
                cluster.emit(
                    app,
                    pod.name,
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                    WARNING,
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

    def _pull_failed(self, app: App, rs: ReplicaSet, batch: PodBatch) -> None:
        """The first pull of an image the registry does not have: ErrImagePull; the kubelet
        then backs off (ImagePullBackOff, from :meth:`_probed`)."""
        cluster = self._cluster
        error = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{rs.image}": '
            f'failed to resolve reference "{rs.image}": {rs.image}: not found'
        )
        for pod in batch.pods:
            pod.set_state("waiting", "ErrImagePull", error)
            cluster.emit(
                app, pod.name, "Failed", f'Failed to pull image "{rs.image}": {error}', WARNING
            )
            cluster.emit(app, pod.name, "Failed", "Error: ErrImagePull", WARNING)
        batch.timer = cluster.later(self.retry_interval, self._probed, app, rs, batch)
        cluster.publish_status(app)
