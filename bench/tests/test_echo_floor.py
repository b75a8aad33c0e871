"""The echo floor server answers the bench's calls, and its fan-out delivers every event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc

from bench.clients import TOKENS, channel, consume, run_unary
from bench.echo_server import Context, EchoDeployer, EchoRelease
from bench.floors import env_change_op, stream_messages_per_s
from bench.procs import free_port


@pytest.fixture
async def echo_addr() -> AsyncIterator[str]:
    server = grpc.aio.server()
    release_pb2_grpc.add_ReleaseServiceServicer_to_server(EchoRelease(), server)  # type: ignore[abstract]
    deployer_pb2_grpc.add_DeployerServiceServicer_to_server(EchoDeployer(), server)  # type: ignore[abstract]
    addr = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(addr)
    await server.start()
    yield addr
    await server.stop(None)


async def test_unary_runs_count_every_measured_call_and_none_of_the_warmup(echo_addr: str) -> None:
    op = env_change_op(lambda client: f"app-{client}")
    result = await run_unary(echo_addr, op, clients=3, calls_per_client=7, warmup_per_client=2)
    assert result["n"] == 21
    assert result["clients"] == 3


async def test_echo_env_change_answers_with_a_release_of_the_request(echo_addr: str) -> None:
    async with channel(echo_addr) as ch:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        resp = await stub.ChangeEnv(release_pb2.ChangeEnvRequest(app="a", set={"K": "v"}))
    assert resp.changed and resp.release.app == "a" and dict(resp.release.env) == {"K": "v"}


async def test_stream_floor_delivers_every_event_of_every_stream(echo_addr: str) -> None:
    result = await stream_messages_per_s(echo_addr, streams=5, events_per_stream=12)
    assert result["messages"] == 5 * (12 + 2)


@pytest.mark.parametrize("mode", ["fanout", "fanout-all"])
async def test_fanout_floor_gives_every_watcher_every_event_once(echo_addr: str, mode: str) -> None:
    deployment_id = f"{mode}:3:0,5,5,20"
    async with channel(echo_addr) as ch:
        stub = deployer_pb2_grpc.DeployerServiceStub(ch)
        request = deployer_pb2.WatchRequest(deployment_id=deployment_id)
        results = await asyncio.wait_for(
            asyncio.gather(*(consume(stub.Watch(request)) for _ in range(3))), timeout=30
        )
    for res in results:
        assert res.error == ""
        assert res.last is not None and res.last.last_seq == 4
        assert not res.gaps_or_duplicates(4)


async def test_a_watcher_of_the_fanout_floor_that_comes_late_gets_the_missed_events_first(
    echo_addr: str,
) -> None:
    deployment_id = "fanout:2:0,10"
    async with channel(echo_addr) as ch:
        stub = deployer_pb2_grpc.DeployerServiceStub(ch)
        request = deployer_pb2.WatchRequest(deployment_id=deployment_id)
        first = await asyncio.wait_for(consume(stub.Watch(request)), timeout=30)
        late = await asyncio.wait_for(consume(stub.Watch(request)), timeout=30)
    assert first.seqs == late.seqs == [1, 2]
    assert late.received[0][1] < late.opened_at  # stamped before it connected: a replay


class _MetadataEcho(deployer_pb2_grpc.DeployerServiceServicer):  # type: ignore[misc]
    """Answers with the authorization header it received, as the deployment id."""

    @staticmethod
    def _auth(context: Context) -> str:
        metadata = context.invocation_metadata() or ()
        return next((str(v) for k, v in metadata if k == "authorization"), "")

    async def GetDeployment(
        self, request: deployer_pb2.GetDeploymentRequest, context: Context
    ) -> deployer_pb2.Deployment:
        return deployer_pb2.Deployment(id=self._auth(context))

    async def Watch(
        self, request: deployer_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        yield deployer_pb2.DeploymentUpdate(
            deployment=deployer_pb2.Deployment(id=self._auth(context))
        )


async def test_the_token_of_an_address_goes_with_unary_and_stream_calls() -> None:
    server = grpc.aio.server()
    deployer_pb2_grpc.add_DeployerServiceServicer_to_server(_MetadataEcho(), server)  # type: ignore[abstract]
    addr = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(addr)
    await server.start()
    TOKENS[addr] = "rmt_bench"
    try:
        async with channel(addr) as ch:
            stub = deployer_pb2_grpc.DeployerServiceStub(ch)
            unary = await stub.GetDeployment(deployer_pb2.GetDeploymentRequest(id="D"))
            stream = await consume(stub.Watch(deployer_pb2.WatchRequest(deployment_id="D")))
    finally:
        del TOKENS[addr]
        await server.stop(None)
    assert unary.id == "Bearer rmt_bench"
    assert stream.first is not None and stream.first.id == "Bearer rmt_bench"
