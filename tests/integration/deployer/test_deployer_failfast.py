"""Fail fast and diagnostics through the real Deployer gRPC server (sim backend, the real
Release service, SQLite and PostgreSQL): a release whose image cannot be pulled, or whose
containers run out of memory, is rolled back at once with a reason naming service, pod and
condition, not after its deadline; ``GetDeployment`` shows each service's counts, pod states
and last warning events, also once the deployment has ended and from another Deployer."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

from relman.v1 import deployer_pb2, types_pb2
from support.deployer import ACTOR, new_app, read_stream, release_status, set_env
from support.deployer_stack import Stack

POD = r"web-\w+-\w{5}"
# Far longer than any test may take: a rollback before it was decided by fail-fast.
DEADLINE = 3600


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition"
) -> None:
    """Poll the async ``condition`` until it holds, or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def promote_failing(stack: Stack, fail: str) -> tuple[str, str, deployer_pb2.Deployment]:
    """Promote a good release, then one with RELMAN_SIM_FAIL=``fail``; (good id, bad id,
    the bad deployment as its stream ended)."""
    deployer = stack.deployer
    good = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=ACTOR))
    bad = await set_env(stack.release, "myapp", RELMAN_SIM_FAIL=fail)
    got = await read_stream(
        deployer.Promote(
            deployer_pb2.PromoteRequest(app="myapp", timeout_seconds=DEADLINE), metadata=ACTOR
        )
    )
    assert got.last is not None
    return good, bad, got.last


async def test_unpullable_image_rolls_back_at_once_naming_image_pull_back_off(
    stack: Stack,
) -> None:
    await stack.start_deployer()
    good, bad, last = await promote_failing(stack, "pull")
    assert last.outcome == types_pb2.OUTCOME_ROLLED_BACK
    assert re.fullmatch(
        rf'pods of web cannot pull image "[^"]+": ImagePullBackOff \(pod {POD}\)', last.reason
    ), last.reason
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[good], statuses[bad]) == ("active", "failed")

    # Diagnostics of the ended deployment, from a Deployer that did not run it.
    other = await stack.start_deployer()
    got = await other.GetDeployment(deployer_pb2.GetDeploymentRequest(id=last.id))
    assert got.HasField("diagnostics_recorded")
    (web,) = got.diagnostics
    # The Deployment's counts: old pods keep serving (minimum 50%), new ones never ready.
    assert (web.name, web.desired, web.updated, web.ready) == ("web", 2, 2, 1)
    assert web.pods and all(re.fullmatch(POD, p.name) for p in web.pods)
    assert {p.reason for p in web.pods} <= {"ErrImagePull", "ImagePullBackOff"}
    assert "ImagePullBackOff" in {p.reason for p in web.pods}
    assert all(not p.ready and p.state == "waiting" for p in web.pods)
    warnings = [(e.reason, e.message) for e in web.events]
    assert ("Failed", "Error: ImagePullBackOff") in warnings
    assert any(m.startswith("Failed to pull image ") for _, m in warnings)
    assert all(re.fullmatch(rf"system/k8s/{POD}", e.source) for e in web.events)
    # The listing stays lean: diagnostics only come with GetDeployment.
    listed = await other.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert all(not d.diagnostics for d in listed.deployments)


async def test_oom_killed_containers_roll_back_at_once(stack: Stack) -> None:
    await stack.start_deployer()
    _, _, last = await promote_failing(stack, "oom")
    assert last.outcome == types_pb2.OUTCOME_ROLLED_BACK
    assert re.fullmatch(rf"pods of web ran out of memory: OOMKilled \(pod {POD}\)", last.reason)
    got = await stack.deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=last.id))
    (web,) = got.diagnostics
    oom = [p for p in web.pods if p.last_termination == "OOMKilled"]
    assert oom and all(p.exit_code == 137 and p.restarts >= 1 for p in oom)


async def test_crash_loop_reason_names_the_pod_and_the_last_exit(stack: Stack) -> None:
    await stack.start_deployer()
    _, _, last = await promote_failing(stack, "crash")
    assert re.fullmatch(
        rf"pods of web crash-looping \(restarted 3 times\): CrashLoopBackOff, "
        rf"last exit Error \(code 1\) \(pod {POD}\)",
        last.reason,
    ), last.reason
    got = await stack.deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=last.id))
    assert any(
        e.message == "Back-off restarting failed container" for e in got.diagnostics[0].events
    )


async def test_a_succeeded_deployment_has_its_ready_pods_as_diagnostics(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp", replicas=3)
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    info = await deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=got.last.id))
    (web,) = info.diagnostics
    assert (web.desired, web.updated, web.ready, web.available) == (3, 3, 3, 3)
    assert len(web.pods) == 3
    assert all(p.ready and p.state == "running" and p.phase == "Running" for p in web.pods)
    assert not web.events  # no warnings


async def test_diagnostics_are_recorded_while_the_rollout_goes(stack: Stack) -> None:
    """A rollout that is stuck (never ready) shows its pods before it ends, and the end's
    diagnostics replace them in the outcome's transaction."""
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=ACTOR))
    await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="unready")
    stream = deployer.Promote(
        deployer_pb2.PromoteRequest(app="myapp", timeout_seconds=DEADLINE), metadata=ACTOR
    )
    first = await read_stream(stream, max_events=1)
    running: list[deployer_pb2.Deployment] = []

    async def recorded() -> bool:
        got = await deployer.GetDeployment(
            deployer_pb2.GetDeploymentRequest(id=first.first.id), metadata=ACTOR
        )
        if got.diagnostics and any(e.reason == "Unhealthy" for e in got.diagnostics[0].events):
            running.append(got)
        return bool(running)

    await eventually_async(recorded, what="diagnostics of the running deployment")
    (during,) = running
    assert during.outcome == types_pb2.OUTCOME_RUNNING and not during.HasField("ended")
    assert all(p.state == "running" and not p.ready for p in during.diagnostics[0].pods)

    await deployer.Cancel(deployer_pb2.CancelRequest(app="myapp"), metadata=ACTOR)
    ended = await read_stream(stream, so_far=first)
    assert ended.last is not None and ended.last.outcome == types_pb2.OUTCOME_CANCELLED
    after = await deployer.GetDeployment(
        deployer_pb2.GetDeploymentRequest(id=first.first.id), metadata=ACTOR
    )
    assert after.diagnostics_recorded.ToDatetime() >= during.diagnostics_recorded.ToDatetime()
    assert after.diagnostics[0].pods  # the pods as they stood when it was cancelled
