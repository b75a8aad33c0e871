"""The Deployer on the Release service's contract: how many calls a promote and a rollback
make, ReportDeployment's ordering (a late report changes nothing), ids and listing limits
refused or capped alike on both services.

The real Release service and the real Deployer over gRPC, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common import tokens
from relman_common.clock import utcnow
from relman_common.errors import INVALID_ID, InvalidArgument
from relman_common.grpc_errors import error_details
from relman_common.lifecycle import Outcome
from relman_common.vocabulary import DEPLOYMENT, MAX_PAGE_SIZE, new_id
from relman_deployer.credentials import DeployerToken
from relman_deployer.domain.model import Deployment
from relman_deployer.release_client import ReleaseClient
from relman_deployer.store import rows
from relman_deployer.store.tables import deployments
from sqlalchemy import insert
from support.deployer import new_app, new_build, read_stream, release_status
from support.deployer_stack import Stack


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[ReleaseClient]:
    """The Deployer's own client of the Release service, with the Deployer's service token."""
    token = DeployerToken(stack.data_dir / tokens.DEPLOYER_TOKEN_FILE)
    c = ReleaseClient(stack.release_addr, token=token, retry_deadline=10.0)
    try:
        yield c
    finally:
        await c.close()


async def test_a_promote_makes_three_release_calls_and_a_rollback_at_most_three(
    stack: Stack,
) -> None:
    deployer = await stack.start_deployer(pod_delay=0.1)
    first = await new_app(stack.release, "myapp", replicas=1)
    calls = stack.release_calls

    mark = calls.mark()
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    promote = calls.since(mark)
    print(f"\nRelease service calls of one promote ({len(promote)}): {promote}")
    assert promote == ["GetDeployable", "ReportDeployment", "ReportDeployment"]

    await new_build(stack.release, "myapp", replicas=2)
    mark = calls.mark()
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert calls.since(mark) == ["GetDeployable", "ReportDeployment", "ReportDeployment"]

    mark = calls.mark()
    got = await read_stream(
        deployer.Rollback(deployer_pb2.RollbackRequest(app="myapp", release_id=first))
    )
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    rollback = calls.since(mark)
    print(f"Release service calls of one rollback ({len(rollback)}): {rollback}")
    # CreateRollbackRelease, then the reports: the `running` one is dropped when the outcome
    # is ready before it was sent (the outcome says more), so 2 or 3 calls.
    assert rollback[0] == "CreateRollbackRelease"
    assert 2 <= len(rollback) <= 3
    assert rollback[1:] in (["ReportDeployment"], ["ReportDeployment", "ReportDeployment"])
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == got.first.release_id


async def test_a_late_report_about_an_older_deployment_changes_nothing(
    stack: Stack, client: ReleaseClient
) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp", replicas=1)
    await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    second = await new_build(stack.release, "myapp", replicas=2)
    third = await new_build(stack.release, "myapp", replicas=3)
    now = utcnow()
    older = Deployment(new_id(DEPLOYMENT), "myapp", second, first, "alice", now)
    newer = Deployment(new_id(DEPLOYMENT), "myapp", third, first, "alice", now + timedelta(1))

    assert await client.report(older, Outcome.RUNNING) is True
    assert await client.report(newer, Outcome.RUNNING) is True  # started later: now current
    # The older deployment's success arrives after the newer one started: stale.
    assert await client.report(older, Outcome.SUCCEEDED) is False
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == first
    stale = await stack.release.GetRelease(release_pb2.GetReleaseRequest(app="myapp", id=second))
    assert (stale.last_deployment_id, stale.last_deployment_outcome) == (
        older.id,
        types_pb2.OUTCOME_RUNNING,  # as the report before the newer deployment left it
    )
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[first], statuses[third]) == ("active", "promoting")

    assert await client.report(newer, Outcome.SUCCEEDED) is True
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == third
    # Repeated, or a `running` after the end: nothing changes.
    await client.report(newer, Outcome.SUCCEEDED)
    await client.report(newer, Outcome.RUNNING)
    await client.report(older, Outcome.FAILED)
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == third
    rel = await stack.release.GetRelease(release_pb2.GetReleaseRequest(app="myapp", id=third))
    assert (rel.last_deployment_id, rel.last_deployment_outcome) == (
        newer.id,
        types_pb2.OUTCOME_SUCCEEDED,
    )
    statuses = await release_status(stack.release, "myapp")
    assert (statuses[first], statuses[third]) == ("", "active")


async def test_malformed_ids_are_invalid_argument_with_the_same_words_on_both_services(
    stack: Stack, client: ReleaseClient
) -> None:
    deployer = await stack.start_deployer()
    expected = 'invalid deployment id "nope": ids are D followed by 10 capital letters'

    for call in (
        deployer.GetDeployment(deployer_pb2.GetDeploymentRequest(id="nope")),
        read_stream(deployer.Watch(deployer_pb2.WatchRequest(deployment_id="nope"))),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith(expected)
        assert error_details(err.value)[0] == INVALID_ID

    rid = await new_app(stack.release, "myapp")
    bad = Deployment("nope", "myapp", rid, "", "alice", utcnow())
    with pytest.raises(InvalidArgument) as refused:
        await client.report(bad, Outcome.RUNNING)
    assert str(refused.value).startswith(expected)
    assert (refused.value.reason, refused.value.field) == (INVALID_ID, "deployment_id")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.release.GetRelease(release_pb2.GetReleaseRequest(app="myapp", id="nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith('invalid release id "nope"')


async def test_listings_are_capped_at_1000_a_page(stack: Stack) -> None:
    deployer = await stack.start_deployer()
    store = stack.orchestrator.store
    t0 = utcnow() - timedelta(days=1)
    template = Deployment("D", "myapp", "RAAAAAAAAAA", "", "alice", t0, outcome=Outcome.SUCCEEDED)
    made = [
        replace(template, id=new_id(DEPLOYMENT), started=t0 + timedelta(seconds=i))
        for i in range(MAX_PAGE_SIZE + 5)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(deployments), [rows.deployment_row(d) for d in made])

    page = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(limit=5000))
    assert len(page.deployments) == MAX_PAGE_SIZE and page.next_page_token
    rest = await deployer.ListDeployments(
        deployer_pb2.ListDeploymentsRequest(limit=5000, page_token=page.next_page_token)
    )
    assert len(rest.deployments) == 5 and rest.next_page_token == ""
    default = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert len(default.deployments) == 10
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(limit=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
