"""Authentication on the Deployer: every RPC needs a user's token, verified by the Release
service; what the Deployer writes there on a user's behalf records that user as the actor; its
own service token is read lazily, so it may start before the Release service made it (how its
token file is read is in tests/unit/deployer/test_deployer_auth.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, types_pb2
from relman_common import tokens
from relman_common.auth import UNAUTHENTICATED_MESSAGE, call_metadata
from support.deployer import new_app, new_build, read_stream
from support.deployer_stack import Stack

# Every RPC of DeployerService, with a request that would otherwise be served.
RPCS: dict[str, Any] = {
    "Promote": deployer_pb2.PromoteRequest(app="myapp"),
    "Rollback": deployer_pb2.RollbackRequest(app="myapp", release_id="R0"),
    "Watch": deployer_pb2.WatchRequest(deployment_id="D0"),
    "Cancel": deployer_pb2.CancelRequest(app="myapp"),
    "GetDeployment": deployer_pb2.GetDeploymentRequest(id="D0"),
    "ListDeployments": deployer_pb2.ListDeploymentsRequest(app="myapp"),
    "PlanPromotion": deployer_pb2.PromoteRequest(app="myapp"),
}
STREAMING = {"Promote", "Rollback", "Watch"}


def test_the_table_names_every_rpc_of_the_service() -> None:
    service = deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"]
    assert {m.name for m in service.methods} == set(RPCS)


async def call_raw(addr: str, method: str, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    """Calls ``method`` on a channel that adds nothing; the status it ends with."""
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = deployer_pb2_grpc.DeployerServiceStub(channel)
        try:
            if method in STREAMING:
                async for _ in getattr(stub, method)(RPCS[method], metadata=metadata, timeout=10):
                    pass
            else:
                await getattr(stub, method)(RPCS[method], metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAUTHENTICATED:
                assert err.details() == UNAUTHENTICATED_MESSAGE
            return err.code()
    return grpc.StatusCode.OK


async def statuses(addr: str, metadata: list[tuple[str, str]]) -> dict[str, grpc.StatusCode]:
    return {method: await call_raw(addr, method, metadata) for method in RPCS}


def all_unauthenticated() -> dict[str, grpc.StatusCode]:
    return dict.fromkeys(RPCS, grpc.StatusCode.UNAUTHENTICATED)


async def test_every_rpc_without_a_token_is_unauthenticated_but_health_is_open(
    stack: Stack,
) -> None:
    await stack.start_deployer()
    assert await statuses(stack.deployer_addr, [("x-relman-actor", "alice")]) == (
        all_unauthenticated()
    )
    async with grpc.aio.insecure_channel(stack.deployer_addr) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="relman.v1.DeployerService"), timeout=10
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_every_rpc_with_a_wrong_token_is_unauthenticated(stack: Stack) -> None:
    await stack.start_deployer()
    forged = "rmt_" + "x" * 43
    assert await statuses(stack.deployer_addr, call_metadata(forged)) == all_unauthenticated()
    not_a_token = [("authorization", "Bearer hunter2")]
    assert await statuses(stack.deployer_addr, not_a_token) == all_unauthenticated()


async def test_every_rpc_with_a_revoked_token_is_unauthenticated(stack: Stack) -> None:
    await stack.start_deployer()
    carol = await stack.create_token("carol")
    # The token works: a call the guards refuse (FAILED_PRECONDITION, NOT_FOUND) got past auth.
    allowed = await call_raw(stack.deployer_addr, "ListDeployments", call_metadata(carol))
    assert allowed == grpc.StatusCode.OK
    await stack.revoke_token("carol")

    async def refused() -> bool:
        # The Deployer trusts a verified token for up to 2 s (its cache), then asks again.
        code = await call_raw(stack.deployer_addr, "ListDeployments", call_metadata(carol))
        return code == grpc.StatusCode.UNAUTHENTICATED

    await _until(refused, what="the revoked token to be refused")
    assert await statuses(stack.deployer_addr, call_metadata(carol)) == all_unauthenticated()


async def test_deployments_and_rollback_copies_record_the_token_name_as_actor(
    stack: Stack,
) -> None:
    deployer = await stack.start_deployer()
    first = await new_app(stack.release, "myapp", replicas=1)
    promoted = await read_stream(
        deployer.Promote(
            deployer_pb2.PromoteRequest(app="myapp"), metadata=(("x-relman-actor", "alice"),)
        )
    )
    assert promoted.first.actor == "alice"
    await new_build(stack.release, "myapp", replicas=2)
    second = await read_stream(
        deployer.Promote(
            deployer_pb2.PromoteRequest(app="myapp"), metadata=(("x-relman-actor", "bob"),)
        )
    )
    assert second.first.actor == "bob"

    rolled = await read_stream(
        deployer.Rollback(
            deployer_pb2.RollbackRequest(app="myapp", release_id=first),
            metadata=(("x-relman-actor", "alice"),),
        )
    )
    assert rolled.last is not None and rolled.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    copy = await stack.release.GetRelease(
        release_pb2.GetReleaseRequest(app="myapp", id=rolled.first.release_id)
    )
    assert (copy.id != first, copy.actor, rolled.first.actor) == (True, "alice", "alice")
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert [d.actor for d in listed.deployments] == ["alice", "bob", "alice"]


async def test_the_deployer_waits_for_its_token_file_made_after_it_started(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As under ``make run``: the Deployer is up before its token file exists."""
    late = tmp_path / "late" / "deployer.token"
    deployer = await stack.start_deployer(token_file=late)
    await new_app(stack.release, "myapp", replicas=1)
    promote = asyncio.ensure_future(
        read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    )
    try:
        caplog.set_level(logging.INFO, logger="relman.deployer.credentials")

        async def waiting() -> bool:
            return any("waiting for the service token file" in r.message for r in caplog.records)

        await _until(waiting, what="the Deployer to wait for its token file")
        assert not promote.done()
        # The Release service's real file, copied where this Deployer looks, late.
        real = tokens.read_token_file(stack.data_dir / tokens.DEPLOYER_TOKEN_FILE)
        tokens.write_secret_file(late, real)
        got = await asyncio.wait_for(promote, 30)
    finally:
        promote.cancel()
    assert got.last is not None and (got.last.outcome, got.first.actor) == (
        types_pb2.OUTCOME_SUCCEEDED,
        "alice",
    )


async def _until(
    condition: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)
