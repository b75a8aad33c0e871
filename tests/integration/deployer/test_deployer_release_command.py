"""The release command (SPEC 8) on the ``sim`` backend, through the real Deployer and Release
service over gRPC: it runs before any rollout step, its output streams as events, a failure,
timeout or cancel ends the deployment before anything is applied, rollbacks skip it, and a
Deployer that stops during it leaves a deployment that the next one finishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common.db import DbExecutor, make_engine
from relman_common.lifecycle import Outcome, Phase
from relman_deployer.backends.sim import SimBackend
from relman_deployer.store.repository import DeploymentStore
from support.deployer import ACTOR, Streamed, read_stream, release_status, set_env
from support.deployer_stack import Stack

APP = "myapp"
SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]
ENDED_BEFORE_ROLLOUT = ["Status: Running => Pending", "Status: Pending => Running"]
ANNOUNCED = "Running release command: bin/migrate --all"


def manifest(timeout: int = 60, replicas: int = 2) -> str:
    return (
        "release:\n"
        "  command: bin/migrate --all\n"
        "  service: worker\n"
        f"  timeout: {timeout}\n"
        "services:\n"
        "  web:\n"
        "    build: .\n"
        f"    scale: {{count: {replicas}}}\n"
        "  worker:\n"
        "    build: .\n"
        "    environment: [MIGRATE_DEFAULT=yes]\n"
    )


async def import_build(
    stack: Stack, release_timeout: int = 60, replicas: int = 2, tag: str = "1"
) -> str:
    resp = await stack.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=APP,
            manifest=manifest(release_timeout, replicas),
            images={"web": f"registry.example/myapp:web.{tag}", "worker": f"r.example/w:{tag}"},
            description=f"build {tag}",
        ),
        metadata=ACTOR,
    )
    return str(resp.release.id)


async def new_app(stack: Stack, release_timeout: int = 60, replicas: int = 2) -> str:
    await stack.release.CreateApp(release_pb2.CreateAppRequest(name=APP), metadata=ACTOR)
    return await import_build(stack, release_timeout, replicas)


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[DeploymentStore]:
    engine = make_engine(stack.db_url)
    executor = DbExecutor(workers=2)
    yield DeploymentStore(engine, executor)
    executor.shutdown()
    engine.dispose()


async def promote(stack: Stack, release_id: str = "") -> Streamed:
    assert stack.deployer is not None
    call = stack.deployer.Promote(
        deployer_pb2.PromoteRequest(app=APP, release_id=release_id), metadata=ACTOR
    )
    return await asyncio.wait_for(read_stream(call), 60)


def job_name(got: Streamed) -> str:
    return f"worker-release-{got.first.id.lower()}"


async def read_until(call: object, message_part: str) -> Streamed:
    """Read a Promote stream until an event's message holds ``message_part``."""
    got = await read_stream(call, max_events=1)  # type: ignore[arg-type]
    while not any(message_part in m for m in got.messages):
        got = await read_stream(call, max_events=len(got.events) + 1, so_far=got)  # type: ignore[arg-type]
    return got


async def test_the_release_command_runs_before_the_rollout_and_its_output_streams(
    stack: Stack,
) -> None:
    sim = SimBackend(pod_delay=0.02)
    await stack.start_deployer(backend=sim)
    release_id = await new_app(stack)
    got = await promote(stack)

    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.last
    assert got.statuses == SUCCESS
    name = job_name(got)
    source = f"system/k8s/{name}"
    lines = [(e.source, e.reason, e.message) for e in got.events]
    announced = lines.index(("system/k8s/atom/app", "ReleaseCommand", ANNOUNCED))
    # Pending, then the command, its Job's and pod's events, its output, then the rollout.
    assert announced == 1
    job = lines[announced + 1 :]
    assert job[0][:2] == (source, "SuccessfulCreate")
    pod = job[0][2].removeprefix("Created pod: ")
    assert pod.startswith(f"{name}-")
    assert [(s, r) for s, r, _ in job[1:6]] == [
        (f"system/k8s/{pod}", "Scheduled"),
        (f"system/k8s/{pod}", "Pulling"),
        (f"system/k8s/{pod}", "Pulled"),
        (f"system/k8s/{pod}", "Created"),
        (f"system/k8s/{pod}", "Started"),
    ]
    assert job[2][2] == 'Pulling image "r.example/w:1"'  # the image of release.service
    assert job[6:9] == [
        (source, "Output", "[sim] running bin/migrate --all"),
        (source, "Output", "[sim] bin/migrate --all done"),
        (source, "Completed", "Job completed"),
    ]
    rollout = job[9:]
    assert rollout[0][:2] == ("system/k8s/web", "ScalingReplicaSet")
    assert all(s != source for s, _, _ in rollout)
    assert got.seqs == list(range(1, len(got.events) + 1))
    assert sim.release_commands() == {name: "succeeded"}
    assert (await release_status(stack.release, APP))[release_id] == "active"


async def test_a_failing_release_command_fails_the_deployment_before_any_pod_of_it(
    stack: Stack,
) -> None:
    sim = SimBackend(pod_delay=0.02)
    await stack.start_deployer(backend=sim)
    first = await new_app(stack)
    assert (await promote(stack)).statuses == SUCCESS
    before = sim.replica_sets(APP, "web"), sim.pods(APP, "web")
    failing = await set_env(stack.release, APP, RELMAN_SIM_FAIL="release")

    got = await promote(stack, failing)

    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_FAILED, got.last
    assert got.last.reason == (
        "release command bin/migrate --all exited with code 1; last output: "
        "[sim] running bin/migrate --all | "
        "[sim] bin/migrate --all failed: RELMAN_SIM_FAIL=release"
    )
    assert got.statuses == ENDED_BEFORE_ROLLOUT
    assert got.events[-1].message == "Status: Pending => Running"
    assert "Job has reached the specified backoff limit" in got.messages
    # Nothing was applied: the active release runs on, with exactly the pods it had.
    assert not [e for e in got.events if e.reason == "ScalingReplicaSet"]
    assert (sim.replica_sets(APP, "web"), sim.pods(APP, "web")) == before
    assert sim.status(APP).release_id == first
    assert await release_status(stack.release, APP) == {failing: "failed", first: "active"}
    assert sim.release_commands()[job_name(got)] == "failed"


async def test_a_release_command_past_its_timeout_fails_the_deployment(stack: Stack) -> None:
    # The one-off takes 10 s (its pod's delay), its timeout is 1 s.
    sim = SimBackend(pod_delay=10.0)
    await stack.start_deployer(backend=sim)
    release_id = await new_app(stack, release_timeout=1)

    got = await promote(stack)

    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_FAILED, got.last
    assert got.last.reason == "release command bin/migrate --all timed out after 1s; no output"
    assert got.statuses == ENDED_BEFORE_ROLLOUT
    assert "Job was active longer than specified deadline" in got.messages
    assert sim.release_commands() == {job_name(got): "timed-out"}
    assert sim.replica_sets(APP, "web") == {}
    assert await release_status(stack.release, APP) == {release_id: "failed"}


async def test_cancelling_during_the_release_command_stops_it_and_applies_nothing(
    stack: Stack,
) -> None:
    sim = SimBackend(pod_delay=60.0)  # the command would run for a minute
    deployer = await stack.start_deployer(backend=sim)
    release_id = await new_app(stack)
    call = deployer.Promote(deployer_pb2.PromoteRequest(app=APP), metadata=ACTOR)
    got = await read_until(call, "Pulling image")
    name = job_name(got)
    assert sim.release_commands() == {name: "running"}

    await deployer.Cancel(deployer_pb2.CancelRequest(app=APP), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(call, so_far=got), 30)

    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_CANCELLED, got.last
    assert got.last.reason == "cancelled by alice"
    assert got.statuses == ENDED_BEFORE_ROLLOUT
    assert sim.release_commands() == {name: "stopped"}
    assert sim.replica_sets(APP, "web") == {}
    assert await release_status(stack.release, APP) == {release_id: ""}


async def test_rollbacks_do_not_run_the_release_command_and_say_so(stack: Stack) -> None:
    sim = SimBackend(pod_delay=0.02)
    deployer = await stack.start_deployer(backend=sim)
    first = await new_app(stack, replicas=1)
    assert (await promote(stack)).statuses == SUCCESS
    second = await import_build(stack, replicas=1, tag="2")
    assert (await promote(stack, second)).statuses == SUCCESS
    assert len(sim.release_commands()) == 2

    # `releases rollback`: a copy of the first release, promoted without its command.
    call = deployer.Rollback(
        deployer_pb2.RollbackRequest(app=APP, release_id=first), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(call), 60)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.last
    assert got.statuses == SUCCESS
    assert f"Release command not run for a rollback (to {first}): bin/migrate --all" in got.messages
    assert ANNOUNCED not in got.messages
    assert len(sim.release_commands()) == 2

    # An automatic rollback after a failed rollout: the command ran for the release, not
    # for the rollback.
    crashing = await set_env(stack.release, APP, RELMAN_SIM_FAIL="crash")
    got = await promote(stack, crashing)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK, got.last
    assert got.messages.count(ANNOUNCED) == 1
    rolling_back = got.messages.index("Status: Updating => Rollback")
    restored = got.last.previous_release_id
    assert (
        got.messages[rolling_back + 1] == f"Release command not run for a rollback (to {restored})"
    )
    assert len(sim.release_commands()) == 3


async def test_a_deployer_stopped_during_the_release_command_leaves_it_to_the_next_one(
    stack: Stack, store: DeploymentStore
) -> None:
    """The stopping Deployer stops the command; the next one resumes the deployment in phase
    ``pending`` and runs the command again from the start, then rolls out."""
    stopped_sim = SimBackend(pod_delay=60.0)
    deployer = await stack.start_deployer(backend=stopped_sim)
    await new_app(stack)
    call = deployer.Promote(deployer_pb2.PromoteRequest(app=APP), metadata=ACTOR)
    got = await read_until(call, "Pulling image")
    name = job_name(got)
    await stack.deployers[-1].stop(grace=0)
    call.cancel()
    assert stopped_sim.release_commands() == {name: "stopped"}
    stopped = await store.get(got.first.id)
    assert (stopped.outcome, stopped.phase) == (Outcome.RUNNING, Phase.PENDING)

    sim = SimBackend(pod_delay=0.02)
    deployer = await stack.start_deployer(backend=sim)
    watch = deployer.Watch(deployer_pb2.WatchRequest(deployment_id=got.first.id), metadata=ACTOR)
    rest = await asyncio.wait_for(read_stream(watch), 60)

    assert rest.last is not None and rest.last.outcome == types_pb2.OUTCOME_SUCCEEDED, rest.last
    assert rest.statuses == SUCCESS
    assert rest.messages.count(ANNOUNCED) == 2
    assert rest.seqs == list(range(1, rest.last.last_seq + 1))
    assert sim.release_commands() == {name: "succeeded"}
