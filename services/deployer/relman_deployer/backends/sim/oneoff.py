"""The sim's release command: a simulated one-off, worded as a Kubernetes Job's run.

The Job ``<service>-release-<deployment>`` creates one pod (``SuccessfulCreate``), which is
scheduled, pulls the service's image and starts (``pod_delay / 2`` seconds), prints two lines
and exits ``pod_delay / 2`` seconds later: 0 (``Completed``), or 1 when the release's env holds
``RELMAN_SIM_FAIL=release`` (``BackoffLimitExceeded``: the Job has no retries). A run that is
still going at its timeout is stopped (``DeadlineExceeded``). Nothing is executed: the command
is only named in the output.

Every run is recorded in :attr:`OneOffs.runs` (name -> state) for inspection; a run whose
reader goes away (a cancelled deployment) is ``stopped``.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncGenerator

from relman_deployer.backends.base import (
    OUTPUT_REASON,
    BackendEvent,
    CommandOutcome,
    OutputTail,
    ReleaseJob,
    ReleaseOutput,
)
from relman_deployer.backends.sim.cluster import Cluster
from relman_deployer.backends.sim.model import CONTAINER, FAIL_ENV, FAIL_RELEASE
from relman_deployer.backends.sim.names import generated_suffix, node_name

RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED = (
    "running",
    "succeeded",
    "failed",
    "timed-out",
    "stopped",
)


class OneOffs:
    def __init__(self, cluster: Cluster, pod_delay: float) -> None:
        self._cluster = cluster
        self.pod_delay = pod_delay
        # Every run so far: Job name -> RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED.
        self.runs: dict[str, str] = {}

    async def run(self, job: ReleaseJob, fail: str) -> AsyncGenerator[ReleaseOutput, None]:
        cluster = self._cluster
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout_seconds
        pod = f"{job.name}-{generated_suffix(cluster.rng)}"
        namespace = cluster.app(job.app).namespace
        tail = OutputTail()
        self.runs[job.name] = RUNNING
        state = STOPPED

        def event(obj: str, reason: str, message: str) -> BackendEvent:
            return BackendEvent(cluster.clock(), f"system/k8s/{obj}", reason, message)

        def output(line: str) -> BackendEvent:
            return event(job.name, OUTPUT_REASON, tail.add(line))

        async def wait(seconds: float) -> bool:
            """Sleep ``seconds``, or until the deadline; False when the deadline came first."""
            left = deadline - loop.time()
            await asyncio.sleep(max(min(seconds, left), 0))
            return seconds < left

        try:
            yield event(job.name, "SuccessfulCreate", f"Created pod: {pod}")
            yield event(
                pod,
                "Scheduled",
                f"Successfully assigned {namespace}/{pod} to {node_name(cluster.rng)}",
            )
            yield event(pod, "Pulling", f'Pulling image "{job.service.image}"')
            if await wait(self.pod_delay / 2):
                yield event(pod, "Pulled", f'Successfully pulled image "{job.service.image}"')
                yield event(pod, "Created", f"Created container {CONTAINER}")
                yield event(pod, "Started", f"Started container {CONTAINER}")
                command = shlex.join(job.command)
                yield output(f"[sim] running {command}")
                failing = fail == FAIL_RELEASE
                if await wait(self.pod_delay / 2):
                    if failing:
                        yield output(f"[sim] {command} failed: {FAIL_ENV}={FAIL_RELEASE}")
                        state = FAILED
                        yield event(
                            job.name,
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                        )
                        self.runs[job.name] = state
                        yield CommandOutcome(exit_code=1, last_lines=tail.lines())
                    else:
                        yield output(f"[sim] {command} done")
                        state = SUCCEEDED
                        yield event(job.name, "Completed", "Job completed")
                        self.runs[job.name] = state
                        yield CommandOutcome(exit_code=0, last_lines=tail.lines())
                    return
            state = TIMED_OUT
            yield event(
                job.name, "DeadlineExceeded", "Job was active longer than specified deadline"
            )
            self.runs[job.name] = state
            yield CommandOutcome(exit_code=None, last_lines=tail.lines(), timed_out=True)
        finally:
            self.runs[job.name] = state
