"""Authentication of the Release service over real gRPC, on SQLite and on PostgreSQL: every
RPC needs a live token, tokens are managed by admins only, and the actor is the token's."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman.v1 import auth_pb2, auth_pb2_grpc, release_pb2_grpc, types_pb2
from relman.v1 import release_pb2 as pb
from relman_common import tokens
from relman_common.auth import UNAUTHENTICATED_MESSAGE
from relman_common.secretbox import SecretBox
from relman_release.api.server import bootstrap_token_files, build_service
from relman_release.store.uow import open_store
from sqlalchemy import text
from support.rpcs import (
    BUILD_SERVICE,
    IMPLEMENTED,
    RELEASE_PROCESS,
    RELEASE_SERVICE,
    TOKEN_SERVICE,
    call_empty,
    methods,
    path,
    served_services,
)
from support.security import SecureServer, metadata, wait_until

Code = grpc.StatusCode
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"

EVERY_RPC = [path(m) for m in methods(RELEASE_PROCESS)]
METHOD = {path(m): m for m in methods(RELEASE_PROCESS)}


async def expect(code: grpc.StatusCode, call: Awaitable[Any]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return str(err.value.details())


async def raw_call(
    channel: grpc.aio.Channel, method: str, md: list[tuple[str, str]]
) -> grpc.StatusCode:
    """Calls ``method`` with an empty request; the status code it ends with."""
    code, details = await call_empty(channel, METHOD[method], md)
    assert code != Code.UNAUTHENTICATED or details == UNAUTHENTICATED_MESSAGE
    return code


async def served_rpcs(s: SecureServer) -> tuple[list[str], list[str]]:
    """The RPCs of the Release process's services it serves, and those of the services it
    does not serve (yet): see rpcs.py."""
    served = await served_services(s.channel)
    assert served >= IMPLEMENTED & {x.full_name for x in RELEASE_PROCESS}, served
    guarded = [m for m in EVERY_RPC if METHOD[m].containing_service.full_name in served]
    unserved = [m for m in EVERY_RPC if m not in guarded]
    return guarded, unserved


def test_every_rpc_of_the_release_process_is_covered() -> None:
    """The list below is built from the descriptors: a new RPC is checked automatically."""
    assert len(EVERY_RPC) == (
        len(RELEASE_SERVICE.methods) + len(TOKEN_SERVICE.methods) + len(BUILD_SERVICE.methods)
    )
    assert len(TOKEN_SERVICE.methods) == 4 and len(BUILD_SERVICE.methods) == 6
    for rpc in (
        "/relman.v1.TokenService/WhoAmI",
        "/relman.v1.ReleaseService/ReportDeployment",
        "/relman.v1.BuildService/UploadSource",
        "/relman.v1.BuildService/BuildLogs",
    ):
        assert rpc in EVERY_RPC, rpc
    # Every shape of call is made (raw_call streams where the method does).
    shapes = {(m.client_streaming, m.server_streaming) for m in METHOD.values()}
    assert {(False, False), (True, False), (False, True)} <= shapes


@pytest.mark.parametrize("credentials", ["none", "wrong", "not-bearer", "revoked"])
async def test_every_rpc_refuses_a_call_without_a_live_token(
    secure_server: SecureServer, credentials: str
) -> None:
    s = secure_server
    revoked = await s.new_token("gone")
    await s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="gone"), metadata=metadata(s.admin))
    md = {
        "none": [],
        "wrong": metadata("rmt_" + secrets.token_urlsafe(32)),
        "not-bearer": [("authorization", "Basic " + s.admin)],
        "revoked": metadata(revoked),
    }[credentials]
    guarded, unserved = await served_rpcs(s)
    before = s.snapshot()
    codes = {method: await raw_call(s.channel, method, md) for method in EVERY_RPC}
    assert codes == {
        **dict.fromkeys(guarded, Code.UNAUTHENTICATED),
        **dict.fromkeys(unserved, Code.UNIMPLEMENTED),
    }
    assert s.snapshot() == before


async def test_a_live_token_reaches_every_rpc(secure_server: SecureServer) -> None:
    """The refusals above are about the token: with the admin token no call is refused as
    unauthenticated (empty requests fail validation instead, or succeed). The RPCs of a
    service the process does not serve yet are UNIMPLEMENTED for the admin too."""
    guarded, unserved = await served_rpcs(secure_server)
    codes = {
        m: await raw_call(secure_server.channel, m, metadata(secure_server.admin))
        for m in EVERY_RPC
    }
    assert Code.UNAUTHENTICATED not in codes.values(), codes
    assert {m: codes[m] for m in unserved} == dict.fromkeys(unserved, Code.UNIMPLEMENTED)
    assert Code.UNIMPLEMENTED not in {codes[m] for m in guarded}, codes
    assert codes["/relman.v1.ReleaseService/ListApps"] == Code.OK
    assert codes["/relman.v1.TokenService/WhoAmI"] == Code.OK


async def test_health_stays_open_with_authentication_on(secure_server: SecureServer) -> None:
    health = health_pb2_grpc.HealthStub(secure_server.channel)
    for name in ["", "relman.v1.ReleaseService", "relman.v1.TokenService"]:
        resp = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_actor_recorded_is_the_token_name_not_a_claimed_one(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    alice = await s.new_token("alice")
    claimed = [*metadata(alice), ("x-relman-actor", "mallory")]
    app = await s.release.CreateApp(pb.CreateAppRequest(name="myapp"), metadata=claimed)
    changed = await s.release.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"A": "1"}), metadata=claimed
    )
    assert (app.actor, changed.release.actor) == ("alice", "alice")


async def test_a_service_token_acts_on_behalf_of_the_named_person(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    await s.release.CreateApp(pb.CreateAppRequest(name="myapp"), metadata=metadata(s.admin))
    await s.release.ImportBuild(
        pb.ImportBuildRequest(app="myapp", manifest=MANIFEST, images={"web": "r/web:1"}),
        metadata=metadata(s.admin),
    )
    changed = await s.release.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"A": "1"}),
        metadata=[*metadata(s.deployer), ("x-relman-on-behalf-of", "alice")],
    )
    copy = await s.release.CreateRollbackRelease(
        pb.CreateRollbackReleaseRequest(app="myapp", release_id=changed.release.id),
        metadata=metadata(s.deployer),
    )
    assert (changed.release.actor, copy.release.actor) == ("alice", "deployer")


async def test_only_a_service_token_may_act_on_behalf_of_someone(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    bob = await s.new_token("bob")
    for token, name in [(bob, "bob"), (s.admin, "admin")]:
        app = await s.release.CreateApp(
            pb.CreateAppRequest(name=f"app-{name}"),
            metadata=[*metadata(token), ("x-relman-on-behalf-of", "alice")],
        )
        assert app.actor == name


async def test_only_a_deployer_may_report_a_deployment(secure_server: SecureServer) -> None:
    """ReportDeployment can make a release active: a person's token (even an admin's) is
    refused with PERMISSION_DENIED and changes nothing; the Deployer's service token works."""
    s = secure_server
    await s.release.CreateApp(pb.CreateAppRequest(name="myapp"), metadata=metadata(s.admin))
    imported = await s.release.ImportBuild(
        pb.ImportBuildRequest(app="myapp", manifest=MANIFEST, images={"web": "r/web:1"}),
        metadata=metadata(s.admin),
    )
    report = pb.ReportDeploymentRequest(
        deployment_id="DAAAAAAAAAA",
        app="myapp",
        release_id=imported.release.id,
        outcome=types_pb2.OUTCOME_SUCCEEDED,
    )
    report.started.GetCurrentTime()
    bob = await s.new_token("bob")
    for token in (s.admin, bob):
        message = await expect(
            grpc.StatusCode.PERMISSION_DENIED,
            s.release.ReportDeployment(report, metadata=metadata(token)),
        )
        assert "only service tokens" in message
        app = await s.release.GetApp(pb.GetAppRequest(name="myapp"), metadata=metadata(s.admin))
        assert app.active_release_id == ""
    reported = await s.release.ReportDeployment(report, metadata=metadata(s.deployer))
    assert reported.current and reported.release.status == pb.RELEASE_STATUS_ACTIVE


async def test_only_admin_tokens_create_list_and_revoke_tokens(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    bob = await s.new_token("bob")
    before = s.snapshot()
    for token in (bob, s.deployer):
        md = metadata(token)
        message = await expect(
            Code.PERMISSION_DENIED,
            s.tokens.CreateToken(
                auth_pb2.CreateTokenRequest(name="eve", kind=auth_pb2.TOKEN_KIND_ADMIN), metadata=md
            ),
        )
        assert "only admin tokens may create tokens" in message
        await expect(
            Code.PERMISSION_DENIED, s.tokens.ListTokens(auth_pb2.ListTokensRequest(), metadata=md)
        )
        await expect(
            Code.PERMISSION_DENIED,
            s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="admin"), metadata=md),
        )
    assert s.snapshot() == before


async def test_token_requests_are_validated_and_refusals_write_nothing(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    md = metadata(s.admin)
    await s.new_token("ci-bot", auth_pb2.TOKEN_KIND_SERVICE)
    before = s.snapshot()
    for bad in ["", "CI", "1st", "a_b", "x" * 64, "café"]:
        message = await expect(
            Code.INVALID_ARGUMENT,
            s.tokens.CreateToken(auth_pb2.CreateTokenRequest(name=bad), metadata=md),
        )
        assert "token name" in message
    for unknown in (99, -1):  # not a TokenKind (sent by a newer or broken client)
        message = await expect(
            Code.INVALID_ARGUMENT,
            s.tokens.CreateToken(auth_pb2.CreateTokenRequest(name="ok", kind=unknown), metadata=md),
        )
        assert "admin, service, user" in message
    message = await expect(
        Code.ALREADY_EXISTS,
        s.tokens.CreateToken(auth_pb2.CreateTokenRequest(name="ci-bot"), metadata=md),
    )
    assert message == "token already exists: ci-bot"
    message = await expect(
        Code.NOT_FOUND,
        s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="nobody"), metadata=md),
    )
    assert message == "token not found: nobody"
    assert s.snapshot() == before


async def test_created_tokens_are_listed_with_kind_creator_and_revocation(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    md = metadata(s.admin)
    created = await s.tokens.CreateToken(auth_pb2.CreateTokenRequest(name="alice"), metadata=md)
    assert created.secret.startswith("rmt_") and len(created.secret) == 47
    assert (created.token.name, created.token.kind, created.token.actor) == (
        "alice",
        auth_pb2.TOKEN_KIND_USER,
        "admin",
    )
    assert not created.token.HasField("revoked")
    revoked = await s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="alice"), metadata=md)
    again = await s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="alice"), metadata=md)
    assert revoked.HasField("revoked") and again.revoked == revoked.revoked
    listed = await s.tokens.ListTokens(auth_pb2.ListTokensRequest(), metadata=md)
    assert [(t.name, t.kind, t.actor, t.HasField("revoked")) for t in listed.tokens] == [
        ("admin", auth_pb2.TOKEN_KIND_ADMIN, "bootstrap", False),
        ("deployer", auth_pb2.TOKEN_KIND_SERVICE, "bootstrap", False),
        ("alice", auth_pb2.TOKEN_KIND_USER, "admin", True),
    ]
    await expect(
        Code.ALREADY_EXISTS,
        s.tokens.CreateToken(auth_pb2.CreateTokenRequest(name="alice"), metadata=md),
    )


async def test_a_revoked_token_is_refused_on_its_very_next_call(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    alice = await s.new_token("alice")
    await s.release.ListApps(pb.ListAppsRequest(), metadata=metadata(alice))  # now cached
    await s.tokens.RevokeToken(
        auth_pb2.RevokeTokenRequest(name="alice"), metadata=metadata(s.admin)
    )
    message = await expect(
        Code.UNAUTHENTICATED, s.release.ListApps(pb.ListAppsRequest(), metadata=metadata(alice))
    )
    assert message == UNAUTHENTICATED_MESSAGE


async def test_a_token_revoked_through_another_replica_stops_working_here(
    secure_server: SecureServer, db_url: str
) -> None:
    """Two services on one database: a revocation made through one is honoured by the other
    once its short verification cache lapses (at most 2 s; waited for with a deadline)."""
    s = secure_server
    alice = await s.new_token("alice")
    other = build_service("127.0.0.1:0", open_store(db_url, s.box), auth=True)
    await other.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.port}") as channel:
            replica = release_pb2_grpc.ReleaseServiceStub(channel)
            await replica.ListApps(pb.ListAppsRequest(), metadata=metadata(alice))  # cached
            await s.tokens.RevokeToken(
                auth_pb2.RevokeTokenRequest(name="alice"), metadata=metadata(s.admin)
            )

            async def refused() -> bool:
                try:
                    await replica.ListApps(pb.ListAppsRequest(), metadata=metadata(alice))
                except grpc.aio.AioRpcError as err:
                    return bool(err.code() == Code.UNAUTHENTICATED)
                return False

            await wait_until(refused, what="the other replica to refuse the revoked token")
    finally:
        await other.stop(grace=0)


async def test_the_last_admin_token_can_not_be_revoked(secure_server: SecureServer) -> None:
    s = secure_server
    md = metadata(s.admin)
    message = await expect(
        Code.FAILED_PRECONDITION,
        s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="admin"), metadata=md),
    )
    assert "last admin token" in message
    root = await s.new_token("root", auth_pb2.TOKEN_KIND_ADMIN)
    await s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="admin"), metadata=metadata(root))
    await expect(
        Code.UNAUTHENTICATED, s.tokens.ListTokens(auth_pb2.ListTokensRequest(), metadata=md)
    )
    await expect(
        Code.FAILED_PRECONDITION,
        s.tokens.RevokeToken(auth_pb2.RevokeTokenRequest(name="root"), metadata=metadata(root)),
    )


async def test_whoami_names_the_token_behind_the_call(secure_server: SecureServer) -> None:
    s = secure_server
    alice = await s.new_token("alice")
    me = await s.tokens.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=metadata(alice))
    assert (me.name, me.kind, me.actor) == ("alice", auth_pb2.TOKEN_KIND_USER, "admin")
    acting = await s.tokens.WhoAmI(
        auth_pb2.WhoAmIRequest(),
        metadata=[*metadata(s.deployer), ("x-relman-on-behalf-of", "alice")],
    )
    assert (acting.name, acting.kind) == ("deployer", auth_pb2.TOKEN_KIND_SERVICE)


async def test_tokens_are_stored_only_as_hashes(secure_server: SecureServer) -> None:
    s = secure_server
    secrets_made = [
        s.admin,
        s.deployer,
        await s.new_token("alice"),
        await s.new_token("svc", auth_pb2.TOKEN_KIND_SERVICE),
    ]
    with s.uow.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).all()
        hashes = {r for (r,) in conn.execute(text("SELECT token_hash FROM api_tokens"))}
    stored = repr(rows)
    assert len(rows) == 4
    for secret in secrets_made:
        assert secret not in stored and secret[4:] not in stored
        assert tokens.hash_token(secret) in hashes
    dump = repr(s.snapshot())
    assert not any(secret[4:] in dump for secret in secrets_made)


async def test_token_files_are_private_to_their_owner(secure_server: SecureServer) -> None:
    for name in (tokens.ADMIN_TOKEN_FILE, tokens.DEPLOYER_TOKEN_FILE):
        path = secure_server.data_dir / name
        assert path.stat().st_mode & 0o777 == 0o600
    assert secure_server.admin != secure_server.deployer


async def test_token_management_is_refused_while_authentication_is_off(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Tokens minted while anyone may call would outlive that period: refuse them."""
    uow = open_store(sqlite_url, SecretBox(SecretBox.generate_key()))
    service = build_service("127.0.0.1:0", uow, auth=False)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = auth_pb2_grpc.TokenServiceStub(channel)
            message = await expect(
                Code.FAILED_PRECONDITION, stub.CreateToken(auth_pb2.CreateTokenRequest(name="x"))
            )
            assert "authentication is off" in message
            await expect(Code.FAILED_PRECONDITION, stub.WhoAmI(auth_pb2.WhoAmIRequest()))
        with uow.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == 0
    finally:
        await service.stop(grace=0)


def test_bootstrap_happens_once_and_replaces_stale_token_files(
    sqlite_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / tokens.ADMIN_TOKEN_FILE).write_text("rmt_stale-from-another-database\n")
    uow = open_store(sqlite_url, SecretBox(SecretBox.generate_key()))
    first = bootstrap_token_files(uow, data)
    assert first is not None and tokens.read_token_file(data / tokens.ADMIN_TOKEN_FILE) == first
    assert (data / tokens.ADMIN_TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    deployer = tokens.read_token_file(data / tokens.DEPLOYER_TOKEN_FILE)
    assert bootstrap_token_files(uow, data) is None
    assert tokens.read_token_file(data / tokens.ADMIN_TOKEN_FILE) == first
    assert tokens.read_token_file(data / tokens.DEPLOYER_TOKEN_FILE) == deployer
    assert sorted(p.name for p in data.iterdir()) == ["admin.token", "deployer.token"]
    uow.engine.dispose()


def test_a_failure_to_save_the_bootstrap_tokens_leaves_no_token_behind(
    sqlite_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    uow = open_store(sqlite_url, SecretBox(SecretBox.generate_key()))
    with pytest.raises(OSError):
        bootstrap_token_files(uow, blocker)
    with uow.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == 0
    assert bootstrap_token_files(uow, tmp_path / "data") is not None
    uow.engine.dispose()
