"""PlanPromotion (a promote's dry run) through the real Release service and Deployer on the
sim backend: the plan shows the change against the active release, and nothing is written:
no deployment, no event, no release status, no report to the Release service, no change to
what the sim runs."""

from __future__ import annotations

import json

import grpc
import pytest
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2
from support.deployer import (
    ACTOR,
    new_app,
    new_build,
    read_stream,
    release_status,
    set_env,
)
from support.deployer_stack import Stack


async def snapshot(stack: Stack, deployer: deployer_pb2_grpc.DeployerServiceStub) -> object:
    """Everything a dry run must leave as it was: deployments (with their last event
    numbers), releases with their status words, the sim's running release and ReplicaSets."""
    deployments = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    backend = stack.orchestrator.backend
    return (
        [(d.id, d.outcome, d.last_seq, d.release_id) for d in deployments.deployments],
        await release_status(stack.release, "myapp"),
        backend.status("myapp"),  # type: ignore[attr-defined]
        backend.replica_sets("myapp", "web"),  # type: ignore[attr-defined]
    )


async def test_plan_shows_the_change_and_writes_nothing(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp", replicas=2)
    done = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert done.last is not None and done.last.release_id == first
    await new_build(stack.release, "myapp", replicas=3)
    latest = await set_env(stack.release, "myapp", TOKEN="s3cret")

    before = await snapshot(stack, deployer)
    mark = stack.release_calls.mark()
    plan = await deployer.PlanPromotion(deployer_pb2.PromoteRequest(app="myapp"), metadata=ACTOR)

    assert (plan.release_id, plan.active_release_id, plan.backend) == (latest, first, "sim")
    assert plan.changed and list(plan.warnings) == []
    (web,) = plan.services
    assert web.change == deployer_pb2.CHANGE_CHANGED
    assert (web.old_image, web.new_image) == (
        "registry.example/myapp:web.2",
        "registry.example/myapp:web.3",
    )
    assert [(s.name, s.old_value, s.new_value) for s in web.settings] == [("scale.count", "2", "3")]
    # Values in the clear: the caller may read them with GetRelease too.
    assert [(e.key, e.change, e.new_value) for e in plan.env] == [
        ("TOKEN", deployer_pb2.CHANGE_ADDED, "s3cret")
    ]
    assert [(o.kind, o.change) for o in plan.objects] == [
        ("Secret", deployer_pb2.CHANGE_ADDED),
        ("Deployment", deployer_pb2.CHANGE_CHANGED),
    ]
    deployment = plan.objects[1]
    old, new = json.loads(deployment.before_json), json.loads(deployment.after_json)
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (2, 3)
    assert not plan.HasField("release_command")

    # One read of the Release service, no report; nothing else moved.
    assert stack.release_calls.since(mark) == ["GetDeployable"]
    assert await snapshot(stack, deployer) == before
    releases = await stack.release.ListReleases(release_pb2.ListReleasesRequest(app="myapp"))
    assert releases.releases[0].id == latest


async def test_plan_of_the_active_release_is_no_change(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    plan = await deployer.PlanPromotion(deployer_pb2.PromoteRequest(app="myapp", release_id=first))
    assert not plan.changed
    assert [s.change for s in plan.services] == [deployer_pb2.CHANGE_UNCHANGED]
    assert {o.change for o in plan.objects} == {deployer_pb2.CHANGE_UNCHANGED}
    assert list(plan.env) == []


async def test_plan_keeps_the_promote_guards_and_reports_a_running_deployment(
    stack: Stack,
) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp")
    await new_build(stack.release, "myapp", replicas=3)
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    # An older release needs force, as for Promote.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await deployer.PlanPromotion(deployer_pb2.PromoteRequest(app="myapp", release_id=first))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "can not promote an older release" in (refused.value.details() or "")
    forced = await deployer.PlanPromotion(
        deployer_pb2.PromoteRequest(app="myapp", release_id=first, force=True)
    )
    assert forced.release_id == first

    # A deployment under way (pods that take a minute to start): the plan says the promote
    # would meet it, and takes no lease.
    deployer = await stack.start_deployer(pod_delay=60.0)
    third = await new_build(stack.release, "myapp", replicas=4)
    stream = deployer.Promote(deployer_pb2.PromoteRequest(app="myapp", release_id=third))
    running = await read_stream(stream, max_events=1)
    stream.cancel()
    plan = await deployer.PlanPromotion(deployer_pb2.PromoteRequest(app="myapp"))
    assert [w for w in plan.warnings if running.first.id in w]
    assert plan.warnings[0].startswith("app is currently updating")
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert listed.deployments[0].id == running.first.id
    assert len(listed.deployments) == 2


async def test_plan_of_bad_input_is_refused(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp")
    for request, code in [
        (deployer_pb2.PromoteRequest(app="Bad App"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            deployer_pb2.PromoteRequest(app="myapp", release_id="nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            deployer_pb2.PromoteRequest(app="myapp", timeout_seconds=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (deployer_pb2.PromoteRequest(app="ghost"), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deployer.PlanPromotion(request)
        assert refused.value.code() == code, request


async def test_plan_names_the_release_command_and_what_it_would_change(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    manifest = (
        "release:\n  command: bin/migrate --all\n  timeout: 120\n"
        "services:\n  web:\n    build: .\n    port: 5000\n"
        "    scale: {count: 2, cpu: 250}\n    deployment: {minimum: 100, maximum: 150}\n"
        "  worker:\n    build: .\n    command: bin/work\n"
    )
    imported = await stack.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app="myapp",
            manifest=manifest,
            images={"web": "registry.example/myapp:web.9", "worker": "registry.example/myapp:w.9"},
        ),
        metadata=ACTOR,
    )
    plan = await deployer.PlanPromotion(deployer_pb2.PromoteRequest(app="myapp"))
    assert plan.release_id == imported.release.id
    assert list(plan.release_command.command) == ["bin/migrate", "--all"]
    assert (plan.release_command.service, plan.release_command.timeout_seconds) == ("web", 120)
    web, worker = plan.services
    assert {s.name: (s.old_value, s.new_value) for s in web.settings} == {
        "scale.cpu": ("", "250"),
        "deployment.minimum": ("50%", "100%"),
        "deployment.maximum": ("200%", "150%"),
    }
    assert (worker.name, worker.change, worker.new_image) == (
        "worker",
        deployer_pb2.CHANGE_ADDED,
        "registry.example/myapp:w.9",
    )
    assert ("Deployment", "worker", deployer_pb2.CHANGE_ADDED) in [
        (o.kind, o.name, o.change) for o in plan.objects
    ]
