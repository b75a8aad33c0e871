"""The Deployer service over real gRPC, with the real Release service and the sim backend,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import grpc
import pytest
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common.clock import utcnow
from relman_common.lifecycle import Phase
from relman_deployer.domain.model import (
    APP_SOURCE,
    STATUS_CHANGE,
    Deployment,
    DeploymentEvent,
    PhaseChange,
)
from support.deployer import (
    ACTOR,
    eventually,
    new_app,
    new_build,
    read_stream,
    release_status,
    set_env,
)
from support.deployer_stack import Stack

SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]
ROLLED_BACK = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Rollback",
    "Status: Rollback => Running",
]


async def test_promote_streams_the_rollout_and_makes_the_release_active(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    rid = await new_app(stack.release, "myapp")
    got = await read_stream(
        deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=ACTOR)
    )
    assert (got.first.release_id, got.first.outcome, got.first.actor) == (
        rid,
        types_pb2.OUTCOME_RUNNING,
        "alice",
    )
    assert (
        got.first.kind == types_pb2.DEPLOYMENT_KIND_PROMOTE and got.first.previous_release_id == ""
    )
    assert got.statuses == SUCCESS
    assert got.events[0].source == "system/k8s/atom/app"
    assert got.seqs == list(range(1, len(got.events) + 1))
    assert any(m.startswith("Scaled up replica set web-") for m in got.messages)
    assert got.messages.index("Status: Pending => Updating") > 1  # after apply's first events
    assert got.last is not None
    assert (got.last.outcome, got.last.last_seq) == (types_pb2.OUTCOME_SUCCEEDED, len(got.events))
    assert got.last.HasField("ended")
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == rid
    assert (await release_status(stack.release, "myapp"))[rid] == "active"
    # The log is durable: a Watch of the ended deployment replays exactly the same events.
    replay = await read_stream(
        deployer.Watch(deployer_pb2.WatchRequest(deployment_id=got.first.id))
    )
    assert [(e.seq, e.message) for e in replay.events] == [(e.seq, e.message) for e in got.events]
    assert replay.last is not None and replay.last.outcome == types_pb2.OUTCOME_SUCCEEDED


async def test_crash_looping_release_rolls_back_by_itself(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    good = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    bad = await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="crash")
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.statuses == ROLLED_BACK
    assert "Back-off restarting failed container" in got.messages
    assert got.last is not None
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK
    assert got.last.reason.startswith("pods of web crash-looping (restarted 3 times): ")
    assert got.first.previous_release_id == good
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[good], statuses[bad]) == ("active", "failed")


async def test_unready_release_rolls_back_when_the_timeout_passes(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    good = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="unready")
    got = await read_stream(
        deployer.Promote(deployer_pb2.PromoteRequest(app="myapp", timeout_seconds=1))
    )
    assert got.statuses == ROLLED_BACK
    assert any(m.startswith("Readiness probe failed") for m in got.messages)
    assert got.last is not None
    # The sim's controller gave up after the deadline, in the real controller's words.
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK
    assert re.fullmatch(r'web: ReplicaSet "web-\w+" has timed out progressing\.', got.last.reason)
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == good


async def test_failed_first_promotion_rolls_back_to_no_services(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp")
    await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="crash")
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK
    assert "Stopping container main" in got.messages  # its workloads were removed
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == ""
    assert stack.orchestrator.backend.status("myapp").services == ()  # type: ignore[attr-defined]


async def test_two_promotes_at_once_one_runs_and_the_other_is_told_who(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0.2)
    await new_app(stack.release, "myapp")

    async def promote(actor: str) -> object:
        stream = deployer.Promote(
            deployer_pb2.PromoteRequest(app="myapp"), metadata=(("x-relman-actor", actor),)
        )
        try:
            return await read_stream(stream)
        except grpc.aio.AioRpcError as err:
            return err

    results = await asyncio.gather(promote("alice"), promote("bob"))
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    done = [r for r in results if not isinstance(r, grpc.aio.AioRpcError)]
    assert (len(errors), len(done)) == (1, 1)
    winner = done[0].first  # type: ignore[attr-defined]
    assert errors[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        errors[0]
        .details()
        .startswith(
            f"app is currently updating (deployment {winner.id}, started by {winner.actor} at "
        )
    )
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert [d.id for d in listed.deployments] == [winner.id]


async def test_guards_refuse_without_writing_anything(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await stack.release.CreateApp(release_pb2.CreateAppRequest(name="empty"))
    await set_env(stack.release, "empty", FOO="bar")  # env-only release: no build

    async def refused(request: deployer_pb2.PromoteRequest) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await read_stream(deployer.Promote(request))
        return err.value.code(), err.value.details()

    fp = grpc.StatusCode.FAILED_PRECONDITION
    assert await refused(deployer_pb2.PromoteRequest(app="empty")) == (
        fp,
        "can not promote a release with an empty manifest",
    )
    old = await new_app(stack.release, "myapp")
    await new_build(stack.release, "myapp", replicas=1)
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert await refused(deployer_pb2.PromoteRequest(app="myapp", release_id=old)) == (
        fp,
        "can not promote an older release, try rollback",
    )
    code, _ = await refused(deployer_pb2.PromoteRequest(app="Bad_Name"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await refused(deployer_pb2.PromoteRequest(app="nosuchapp"))
    assert code == grpc.StatusCode.NOT_FOUND
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest())
    assert len(listed.deployments) == 1
    # --force promotes the older release.
    forced = await read_stream(
        deployer.Promote(deployer_pb2.PromoteRequest(app="myapp", release_id=old, force=True))
    )
    assert forced.last is not None and forced.last.outcome == types_pb2.OUTCOME_SUCCEEDED


async def test_promoting_the_active_release_again_redeploys_it(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    rid = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    again = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert again.statuses == SUCCESS
    assert again.last is not None and again.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert again.first.previous_release_id == rid


async def test_watch_after_a_disconnect_gives_every_event_exactly_once(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0.1)
    await new_app(stack.release, "myapp", replicas=4)
    call = deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    part = await read_stream(call, max_events=3)
    call.cancel()  # the client goes away; the deployment goes on
    assert part.seqs == [1, 2, 3]
    rest = await read_stream(
        deployer.Watch(deployer_pb2.WatchRequest(deployment_id=part.first.id, after_seq=3))
    )
    assert rest.last is not None and rest.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    full = await read_stream(deployer.Watch(deployer_pb2.WatchRequest(deployment_id=part.first.id)))
    resumed = [(e.seq, e.message) for e in part.events + rest.events]
    assert resumed == [(e.seq, e.message) for e in full.events]
    assert [e.seq for e in full.events] == list(range(1, rest.last.last_seq + 1))


async def test_watchers_joining_at_any_moment_see_the_same_log(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0.05)
    await new_app(stack.release, "myapp", replicas=3)
    first = await read_stream(
        deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")), max_events=1
    )

    async def watch_from(after: int) -> list[int]:
        got = await read_stream(
            deployer.Watch(deployer_pb2.WatchRequest(deployment_id=first.first.id, after_seq=after))
        )
        return got.seqs

    runs = await asyncio.gather(*(watch_from(i % 3) for i in range(12)))
    final = await deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=first.first.id))
    for i, seqs in enumerate(runs):
        assert seqs == list(range(i % 3 + 1, final.last_seq + 1))


async def test_cancel_turns_the_running_deployment_into_a_rollback(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0.02)
    good = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    with pytest.raises(grpc.aio.AioRpcError) as none_running:
        await deployer.Cancel(deployer_pb2.CancelRequest(app="myapp"))
    assert none_running.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="unready")  # never finishes by itself
    call = deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    started = await read_stream(call, max_events=1)
    cancelled = await deployer.Cancel(
        deployer_pb2.CancelRequest(app="myapp"), metadata=(("x-relman-actor", "bob"),)
    )
    assert cancelled.id == started.first.id
    got = await read_stream(deployer.Watch(deployer_pb2.WatchRequest(deployment_id=cancelled.id)))
    assert got.statuses[-2:] == ["Status: Updating => Rollback", "Status: Rollback => Running"]
    assert got.last is not None
    assert (got.last.outcome, got.last.reason) == (types_pb2.OUTCOME_CANCELLED, "cancelled by bob")
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == good


async def test_rollback_promotes_a_copy_of_the_old_release(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp", replicas=1)
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    await new_build(stack.release, "myapp", replicas=2)
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    got = await read_stream(
        deployer.Rollback(deployer_pb2.RollbackRequest(app="myapp", release_id=first))
    )
    copy = got.first.release_id
    assert copy not in ("", first)
    assert (got.first.kind, got.first.rollback_of) == (types_pb2.DEPLOYMENT_KIND_ROLLBACK, first)
    assert got.statuses == SUCCESS
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    rel = await stack.release.GetRelease(release_pb2.GetReleaseRequest(app="myapp", id=copy))
    assert rel.description == f"rollback to {first}"
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == copy


async def test_get_and_list_deployments_newest_first_in_pages(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    await new_app(stack.release, "myapp", replicas=1)
    ids = []
    for _ in range(3):
        got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
        ids.append(got.first.id)
    page1 = await deployer.ListDeployments(
        deployer_pb2.ListDeploymentsRequest(app="myapp", limit=2)
    )
    page2 = await deployer.ListDeployments(
        deployer_pb2.ListDeploymentsRequest(app="myapp", limit=2, page_token=page1.next_page_token)
    )
    assert [d.id for d in page1.deployments] + [d.id for d in page2.deployments] == ids[::-1]
    assert page2.next_page_token == ""
    one = await deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=ids[0]))
    assert (one.outcome, one.app) == (types_pb2.OUTCOME_SUCCEEDED, "myapp")
    for bad, code in (
        ("nope", grpc.StatusCode.INVALID_ARGUMENT),
        ("DAAAAAAAAAA", grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=bad))
        assert err.value.code() == code


async def test_many_concurrent_promotes_lose_no_event(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0)
    apps = [f"app{i}" for i in range(200)]
    await asyncio.gather(*(new_app(stack.release, app, replicas=2) for app in apps))
    results = await asyncio.gather(
        *(read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app=a))) for a in apps)
    )
    for got in results:
        assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.last
        assert got.seqs == list(range(1, got.last.last_seq + 1))
        assert got.statuses == SUCCESS
    store = stack.orchestrator.store
    for got in results[:20]:
        durable = await store.events_after(got.first.id, 0)
        assert [e.message for e in durable] == got.messages


async def test_release_becomes_active_once_the_release_service_is_back(stack: Stack) -> None:
    deployer = await stack.start_deployer(pod_delay=0.3)
    rid = await new_app(stack.release, "myapp", replicas=1)
    call = deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    first = await read_stream(call, max_events=1)
    await stack.stop_release()  # down while the rollout completes
    backend = stack.orchestrator.backend
    await eventually(lambda: backend.status("myapp").complete, what="rollout complete")  # type: ignore[attr-defined]
    running = await deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id=first.first.id))
    assert running.outcome == types_pb2.OUTCOME_RUNNING  # waiting to tell the Release service
    await stack.start_release()
    rest = await read_stream(call, so_far=first)
    assert rest.last is not None and rest.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert rest.statuses == SUCCESS
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == rid


async def test_a_deployment_whose_owner_died_is_resumed_and_finished(stack: Stack) -> None:
    await stack.start_deployer()
    rid = await new_app(stack.release, "myapp")
    # An owner that took the lease and died before doing anything.
    now = utcnow()
    orphan = Deployment(
        id="DORPHANAAAA",
        app="myapp",
        release_id=rid,
        previous_release_id="",
        actor="alice",
        started=now,
        timeout_seconds=30,
    )
    await stack.orchestrator.store.start(orphan, "dead-owner", now - timedelta(seconds=1))
    await stack.orchestrator.resume_orphans()
    got = await read_stream(
        stack.deployer.Watch(deployer_pb2.WatchRequest(deployment_id=orphan.id))  # type: ignore[union-attr]
    )
    assert got.statuses == SUCCESS
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert await stack.orchestrator.store.lease_of("myapp") is None
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == rid


async def test_an_orphan_in_its_rollback_phase_continues_the_rollback(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    good = await new_app(stack.release, "myapp")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    bad = await set_env(stack.release, "myapp", RELMAN_SIM_FAIL="crash")
    now = utcnow()
    orphan = Deployment(
        id="DORPHANBBBB",
        app="myapp",
        release_id=bad,
        previous_release_id=good,
        actor="alice",
        started=now,
        timeout_seconds=30,
    )
    store = stack.orchestrator.store
    await store.start(orphan, "dead-owner", now - timedelta(seconds=1))
    # What its owner wrote before it died: each status line with the phase it enters.
    written = [
        ("Status: Running => Pending", PhaseChange(orphan.id, Phase.PENDING)),
        ("Status: Pending => Updating", PhaseChange(orphan.id, Phase.UPDATING)),
        (
            "Status: Updating => Rollback",
            PhaseChange(orphan.id, Phase.ROLLING_BACK, "no progress for 30s"),
        ),
    ]
    for seq, (message, phase) in enumerate(written, 1):
        event = DeploymentEvent(orphan.id, seq, now, APP_SOURCE, STATUS_CHANGE, message)
        await store.append_events([event], [phase])
    assert await stack.orchestrator.resume_orphans() == [orphan.id]
    got = await read_stream(deployer.Watch(deployer_pb2.WatchRequest(deployment_id=orphan.id)))
    assert got.statuses == ROLLED_BACK  # the rollback line is not written again
    assert got.seqs == list(range(1, len(got.events) + 1))
    assert got.last is not None
    assert (got.last.outcome, got.last.reason) == (
        types_pb2.OUTCOME_ROLLED_BACK,
        "no progress for 30s",
    )
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[good], statuses[bad]) == ("active", "failed")


async def test_back_to_back_promotes_leave_no_release_shown_promoting(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp")
    one = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    second = await set_env(stack.release, "myapp", COLOR="blue")
    two = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert one.last is not None and two.last is not None
    assert (one.last.outcome, two.last.outcome) == (
        types_pb2.OUTCOME_SUCCEEDED,
        types_pb2.OUTCOME_SUCCEEDED,
    )
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[first], statuses[second]) == ("", "active")
    # The outcomes were written before each stream ended: no release shows `promoting` once it
    # is no longer active.
    third = await set_env(stack.release, "myapp", COLOR="green")
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[second], statuses[third]) == ("", "active")
