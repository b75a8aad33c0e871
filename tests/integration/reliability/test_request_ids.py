"""Client request ids (``x-relman-request-id``, SPEC 10): a retried write with the same id gets
the first call's answer and changes nothing more, on SQLite and PostgreSQL; a Promote retried
with its id follows the deployment the first call started instead of starting another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from relman.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    deployer_pb2,
    deployer_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
    types_pb2,
)
from relman_common.auth import call_metadata
from relman_common.grpc_errors import error_details
from relman_common.request_ids import REQUEST_ID_METADATA, REQUEST_ID_REUSED, new_request_id
from support.deployer import manifest, read_stream
from support.helpers import wait_for
from support.inproc import World
from support.reliability import db_kind, figure

IMAGES = {"web": "registry.example/web:1"}


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    w = await World(db_url, tmp_path / "data", pod_delay=0.05).start()
    try:
        yield w
    finally:
        await w.stop()


def with_id(md: list[tuple[str, str]], request_id: str) -> list[tuple[str, str]]:
    return [*md, (REQUEST_ID_METADATA, request_id)]


async def test_a_repeated_request_id_gets_the_first_answer_and_writes_nothing_more(
    world: World, db_url: str
) -> None:
    md = call_metadata(world.admin, "alice")
    async with grpc.aio.insecure_channel(world.release_addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        app_id = new_request_id()
        created = [
            await stub.CreateApp(
                release_pb2.CreateAppRequest(name="myapp"), metadata=with_id(md, app_id)
            )
            for _ in range(2)
        ]
        # Without the id, the same request is a new one: the app exists.
        with pytest.raises(grpc.aio.AioRpcError) as exists:
            await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
        imported = await stub.ImportBuild(
            release_pb2.ImportBuildRequest(app="myapp", manifest=manifest(1), images=IMAGES),
            metadata=with_id(md, app_id),  # another method: its own result for the same id
        )
        again = await stub.ImportBuild(
            release_pb2.ImportBuildRequest(app="myapp", manifest=manifest(1), images=IMAGES),
            metadata=with_id(md, app_id),
        )
        change_id = new_request_id()
        change = release_pb2.ChangeEnvRequest(app="myapp", set={"A": "1"})
        changes = [await stub.ChangeEnv(change, metadata=with_id(md, change_id)) for _ in range(3)]
        # The same id with another request is a client's mistake, refused.
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.ChangeEnv(
                release_pb2.ChangeEnvRequest(app="myapp", set={"A": "2"}),
                metadata=with_id(md, change_id),
            )
        tokens = auth_pb2_grpc.TokenServiceStub(channel)
        token_id = new_request_id()
        made = [
            await tokens.CreateToken(
                auth_pb2.CreateTokenRequest(name="ci", kind=auth_pb2.TOKEN_KIND_USER),
                metadata=with_id(md, token_id),
            )
            for _ in range(2)
        ]
        env = await stub.GetEnv(release_pb2.GetEnvRequest(app="myapp"), metadata=md)
    assert created[0] == created[1]
    assert again == imported
    assert len({c.release.id for c in changes}) == 1 and changes[0] == changes[2]
    assert dict(env.env) == {"A": "1"}
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(reused.value) == (REQUEST_ID_REUSED, REQUEST_ID_METADATA)
    assert "used before for a different ChangeEnv request" in (reused.value.details() or "")
    # The secret is shown again to the caller that asked for it (the same answer).
    assert made[0].secret == made[1].secret
    assert world.count("apps") == 1
    assert world.count("builds") == 1
    assert world.count("releases") == 2  # the import's and one env change
    assert world.count("api_tokens") == 3  # admin, deployer, ci
    figure(
        "request-ids-repeated",
        f"CreateApp x2, ImportBuild x2, ChangeEnv x3, CreateToken x2 with one id each -> "
        f"1 app, 1 build, 2 releases, 1 new token ({db_kind(db_url)})",
    )


async def test_concurrent_calls_with_one_request_id_make_one_release(
    world: World, db_url: str
) -> None:
    """Retries that race (a client that timed out and retried while the first call was still
    running): every one gets the same release, and only one is made."""
    n = 30
    md = call_metadata(world.admin, "alice")
    async with grpc.aio.insecure_channel(world.release_addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        rid = new_request_id()
        change = release_pb2.ChangeEnvRequest(app="myapp", set={"A": "1"})
        answers = await asyncio.gather(
            *(stub.ChangeEnv(change, metadata=with_id(md, rid)) for _ in range(n))
        )
        # Other ids at the same time are their own changes.
        others = await asyncio.gather(
            *(
                stub.ChangeEnv(
                    release_pb2.ChangeEnvRequest(app="myapp", set={f"K{i}": "1"}),
                    metadata=with_id(md, new_request_id()),
                )
                for i in range(5)
            )
        )
    assert len({a.release.id for a in answers}) == 1
    assert len({o.release.id for o in others}) == 5
    assert world.count("releases") == 6
    figure(
        "request-ids-concurrent",
        f"{n} concurrent ChangeEnv with one id -> 1 release ({db_kind(db_url)})",
        calls=n,
    )


async def test_request_ids_are_per_caller_and_checked(world: World) -> None:
    """Two callers may pick the same id; a malformed id is refused before anything runs."""
    md = call_metadata(world.admin, "alice")
    async with grpc.aio.insecure_channel(world.release_addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        tokens = auth_pb2_grpc.TokenServiceStub(channel)
        user = await tokens.CreateToken(
            auth_pb2.CreateTokenRequest(name="bob", kind=auth_pb2.TOKEN_KIND_ADMIN), metadata=md
        )
        bob = call_metadata(user.secret, "bob")
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        change = release_pb2.ChangeEnvRequest(app="myapp", set={"A": "1"})
        mine = await stub.ChangeEnv(change, metadata=with_id(md, "same-id"))
        his = await stub.ChangeEnv(change, metadata=with_id(bob, "same-id"))
        bad = ["x" * 65, "a b", "-x", "a/b"]
        refused = []
        for value in bad[1:]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ChangeEnv(change, metadata=with_id(md, value))
            refused.append(err.value)
    # bob's change with the same id is his own: env unchanged (A=1 already), no new release.
    assert mine.changed and not his.changed
    assert {e.code() for e in refused} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert all(error_details(e)[1] == REQUEST_ID_METADATA for e in refused)
    assert world.count("releases") == 1


async def test_a_promote_retried_with_its_id_follows_the_deployment_it_started(
    world: World, db_url: str
) -> None:
    md = call_metadata(world.admin, "alice")
    async with (
        grpc.aio.insecure_channel(world.release_addr) as channel,
        grpc.aio.insecure_channel(world.deployer_addr) as dchannel,
    ):
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        deployer = deployer_pb2_grpc.DeployerServiceStub(dchannel)
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        imported = await stub.ImportBuild(
            release_pb2.ImportBuildRequest(app="myapp", manifest=manifest(2), images=IMAGES),
            metadata=md,
        )
        rid = new_request_id()
        request = deployer_pb2.PromoteRequest(app="myapp", release_id=imported.release.id)
        # The first call's stream breaks after two events (the client went away) ...
        first = await read_stream(deployer.Promote(request, metadata=with_id(md, rid)), 2)
        # ... and the retry, while or after the deployment runs, follows the same one.
        retried = await read_stream(deployer.Promote(request, metadata=with_id(md, rid)))
        # After the deployment ended, the id still names it: no second deployment.
        wait_for(world.settled, timeout=60, what="the deployment to end")
        again = await read_stream(deployer.Promote(request, metadata=with_id(md, rid)))
        rollback_id = new_request_id()
        rollback = deployer_pb2.RollbackRequest(app="myapp", release_id=imported.release.id)
        rolled = await read_stream(deployer.Rollback(rollback, metadata=with_id(md, rollback_id)))
        rolled_again = await read_stream(
            deployer.Rollback(rollback, metadata=with_id(md, rollback_id))
        )
    assert retried.first.id == first.first.id
    assert retried.last is not None and retried.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert [e.seq for e in retried.events] == list(range(1, len(retried.events) + 1))
    assert again.first.id == first.first.id
    assert rolled_again.first.id == rolled.first.id
    assert rolled.first.id != first.first.id
    assert world.count("deployments") == 2
    assert world.count("releases") == 2  # the import's and one rollback copy
    figure(
        "request-ids-promote",
        f"Promote x3 and Rollback x2 with one id each -> 2 deployments, 1 rollback copy "
        f"({db_kind(db_url)})",
    )
