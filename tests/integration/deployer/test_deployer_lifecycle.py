"""The deployment lifecycle: a deployment that stops in the middle resumes from its stored phase
and sequence number (the one table of phases, triggers, status lines and outcomes is in
tests/unit/deployer/test_deployer_lifecycle.py).

(That a phase is written in one transaction with the StatusChange event entering it, and the
last event with the outcome and the lease's release, is in test_deployer_store.py.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from relman.v1 import deployer_pb2, types_pb2
from relman_common.db import DbExecutor, make_engine
from relman_common.lifecycle import Outcome, Phase
from relman_deployer.store.repository import DeploymentStore
from support.deployer import Streamed, new_app, read_stream, set_env
from support.deployer_stack import Stack

SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[DeploymentStore]:
    """The Deployers' database, read by the test itself (it outlives any Deployer)."""
    engine = make_engine(stack.db_url)
    executor = DbExecutor(workers=2)
    yield DeploymentStore(engine, executor)
    executor.shutdown()
    engine.dispose()


def deploy_task(deployment_id: str) -> asyncio.Task[None]:
    """The asyncio task running ``deployment_id`` in this process."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"deploy-{deployment_id}"]
    return task  # type: ignore[return-value]


async def read_until_updating(call: object) -> Streamed:
    """Read a Promote stream until it has shown ``Status: Pending => Updating``."""
    got = await read_stream(call, max_events=1)  # type: ignore[arg-type]
    while "Status: Pending => Updating" not in got.statuses:
        got = await read_stream(call, max_events=len(got.events) + 1, so_far=got)  # type: ignore[arg-type]
    return got


@pytest.mark.parametrize("how", ["task-killed", "instance-stopped"])
async def test_a_deployment_stopped_while_updating_resumes_from_its_phase_and_seq(
    stack: Stack, store: DeploymentStore, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped right after ``Status: Pending => Updating`` (its run task killed, as a crash
    of the run would; or the whole Deployer stopped and another one started), the deployment
    resumes once, in phase ``updating`` after its last stored event, and writes ``Status:
    Updating => Running`` once: one log, events 1..N, each status line once."""
    caplog.set_level(logging.INFO, logger="relman.deployer")
    # Pods take 2 s to be ready: the rollout is still going when it is stopped.
    deployer = await stack.start_deployer(pod_delay=2.0)
    if how == "task-killed":
        # Another app's deployment keeps running here all along (its pods never get ready):
        # this Deployer renews that lease, and must not keep the dead run's lease alive too.
        await new_app(stack.release, "other", replicas=1)
        await set_env(stack.release, "other", RELMAN_SIM_FAIL="unready")
        other = deployer.Promote(deployer_pb2.PromoteRequest(app="other", timeout_seconds=600))
        await read_stream(other, max_events=1)
        other.cancel()
    await new_app(stack.release, "myapp", replicas=2)
    call = deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    got = await read_until_updating(call)
    deployment_id = got.first.id

    if how == "task-killed":
        task = deploy_task(deployment_id)
        task.cancel()
        await asyncio.wait([task], timeout=15)
        assert task.done()
        await stack.orchestrator.events.flush()  # what the run wrote before it died
    else:
        await stack.deployers[-1].stop(grace=0)
    stopped = await store.get(deployment_id)
    assert (stopped.outcome, stopped.phase) == (Outcome.RUNNING, Phase.UPDATING)
    assert stopped.last_seq >= len(got.events)

    if how == "task-killed":
        # Nothing ended it: this Deployer stops renewing its lease and, once the lease has
        # expired, resumes it (as any instance would). The stream goes on meanwhile.
        rest = await asyncio.wait_for(read_stream(call, so_far=got), 60)
    else:
        call.cancel()
        deployer = await stack.start_deployer(pod_delay=0.02)
        watch = deployer.Watch(
            deployer_pb2.WatchRequest(deployment_id=deployment_id, after_seq=len(got.events))
        )
        after = await asyncio.wait_for(read_stream(watch), 60)
        rest = Streamed(got.first, got.events + after.events, after.last)

    assert rest.last is not None and rest.last.outcome == types_pb2.OUTCOME_SUCCEEDED, rest.last
    assert rest.statuses == SUCCESS
    assert rest.seqs == list(range(1, rest.last.last_seq + 1))
    durable = await store.events_after(deployment_id, 0)
    assert [(e.seq, e.message) for e in durable] == [(e.seq, e.message) for e in rest.events]
    resumed = f"deployment {deployment_id} app myapp: resuming (updating, last event "
    resumes = [r.getMessage() for r in caplog.records if resumed in r.getMessage()]
    assert resumes == [f"{resumed}{stopped.last_seq})"]
    ended = await store.get(deployment_id)
    assert (ended.outcome, ended.phase) == (Outcome.SUCCEEDED, Phase.ENDED)
    assert await store.lease_of("myapp") is None
