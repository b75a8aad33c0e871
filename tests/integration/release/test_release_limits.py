"""Limits and the shape of refusals: env sizes, the details every error carries, and what any
id or name field does with a NUL byte or 100 KB of text. Real gRPC, real store, on SQLite and
on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from relman.v1 import release_pb2 as pb
from relman.v1 import types_pb2
from relman_common import errors
from relman_common.grpc_errors import error_from_rpc
from relman_common.vocabulary import MAX_ENV_BYTES, env_size

from .calls import (
    Code,
    Stub,
    activate,
    details_of,
    import_build,
    make_app,
    next_start,
    refused,
    report_request,
    set_env,
)
from .conftest import ReleaseServer

# --- env size --------------------------------------------------------------------------------


def env_of_size(size: int, **extra: str) -> dict[str, str]:
    """An env of exactly ``size`` bytes (keys plus UTF-8 values) holding ``extra``, in
    several keys and with text of every width."""
    env = dict(extra)
    chunk = "aé€𝄞=\n" * 10_000  # 1, 2, 3 and 4 UTF-8 bytes per character, 130 kB
    while size - env_size(env) > 2 * len(chunk.encode()):
        env[f"K{len(env):03d}"] = chunk
    key = f"K{len(env):03d}"
    env[key] = "x" * (size - env_size(env) - len(key))
    assert env_size(env) == size
    return env


async def test_an_env_larger_than_a_kubernetes_secret_is_refused_and_nothing_is_written(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    build = (await import_build(stub)).build
    await set_env(stub, A="1")
    before = release_server.snapshot()
    too_big = env_of_size(MAX_ENV_BYTES + 1)

    err = await refused(
        Code.INVALID_ARGUMENT,
        stub.CreateRelease(pb.CreateReleaseRequest(app="myapp", build_id=build.id, env=too_big)),
    )
    assert str(err.details()).startswith(
        f"the env would take {MAX_ENV_BYTES + 1} bytes, more than the {MAX_ENV_BYTES} bytes"
    )
    assert details_of(err).fields == ["env"]
    # ChangeEnv judges the env it would make: the latest env with the change applied.
    set_ = env_of_size(MAX_ENV_BYTES + 1 - env_size({"A": "1"}))
    err = await refused(
        Code.INVALID_ARGUMENT, stub.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set=set_))
    )
    assert str(err.details()).startswith(f"the env would take {MAX_ENV_BYTES + 1} bytes")
    err = await refused(
        Code.INVALID_ARGUMENT,
        stub.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set=too_big, replace=True)),
    )
    assert str(err.details()).startswith(f"the env would take {MAX_ENV_BYTES + 1} bytes")
    assert release_server.snapshot() == before

    # Exactly 1 MiB is allowed; one more key is not.
    full = await stub.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set=env_of_size(MAX_ENV_BYTES), replace=True)
    )
    assert full.changed
    before = release_server.snapshot()
    await refused(Code.INVALID_ARGUMENT, set_env(stub, B="1"))
    assert release_server.snapshot() == before


async def test_an_env_of_almost_one_mib_round_trips(release_stub: Stub) -> None:
    await make_app(release_stub)
    build = (await import_build(release_stub)).build
    env = env_of_size(MAX_ENV_BYTES - 1, MULTI="x=y\nz")
    created = await release_stub.CreateRelease(
        pb.CreateReleaseRequest(app="myapp", build_id=build.id, env=env)
    )
    assert dict(created.env) == env
    got = await release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=created.id))
    assert dict(got.env) == env
    assert dict((await release_stub.GetEnv(pb.GetEnvRequest(app="myapp"))).env) == env

    # The release is promoted, then a copy of it is made: the Deployable holds both envs.
    await activate(release_stub, created.id)
    changed = await set_env(release_stub, MULTI="new")  # two bytes less
    deployable = await release_stub.GetDeployable(pb.GetDeployableRequest(app="myapp"))
    assert deployable.ByteSize() > 2 * MAX_ENV_BYTES - 100
    assert deployable.release.id == changed.release.id
    assert dict(deployable.active_release.env) == env


# --- error details ---------------------------------------------------------------------------


async def test_refusals_carry_a_stable_reason_and_the_field(release_stub: Stub) -> None:
    await make_app(release_stub)
    env_only = await set_env(release_stub, A="1")
    cases: list[tuple[Awaitable[Any], Code, str, list[str]]] = [
        (release_stub.GetApp(pb.GetAppRequest(name="ghost")), Code.NOT_FOUND, "APP_NOT_FOUND", []),
        (
            release_stub.CreateApp(pb.CreateAppRequest(name="Bad_Name")),
            Code.INVALID_ARGUMENT,
            "INVALID_NAME",
            ["name"],
        ),
        (
            release_stub.CreateApp(pb.CreateAppRequest(name="myapp")),
            Code.ALREADY_EXISTS,
            "APP_EXISTS",
            [],
        ),
        (
            release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id="RXXXXXXXXXX")),
            Code.NOT_FOUND,
            "RELEASE_NOT_FOUND",
            [],
        ),
        (
            release_stub.GetBuild(pb.GetBuildRequest(app="myapp", id="BXXXXXXXXXX")),
            Code.NOT_FOUND,
            "BUILD_NOT_FOUND",
            [],
        ),
        (
            release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id="R1")),
            Code.INVALID_ARGUMENT,
            "INVALID_ID",
            ["id"],
        ),
        (
            release_stub.GetDeployable(pb.GetDeployableRequest(app="myapp", release_id="nope")),
            Code.INVALID_ARGUMENT,
            "INVALID_ID",
            ["release_id"],
        ),
        (
            import_build(release_stub, manifest="services: [web]\n"),
            Code.INVALID_ARGUMENT,
            "INVALID_MANIFEST",
            ["manifest"],
        ),
        (
            release_stub.GetReleaseManifest(
                pb.GetReleaseManifestRequest(app="myapp", id=env_only.release.id)
            ),
            Code.FAILED_PRECONDITION,
            "NO_BUILD",
            [],
        ),
        (
            release_stub.DiffReleases(pb.DiffReleasesRequest(app="myapp")),
            Code.FAILED_PRECONDITION,
            "NO_ACTIVE_RELEASE",
            [],
        ),
        (
            release_stub.GetDeployable(
                pb.GetDeployableRequest(app="myapp", release_id=env_only.release.id)
            ),
            Code.FAILED_PRECONDITION,
            "EMPTY_MANIFEST",
            [],
        ),
    ]
    for call, code, reason, fields in cases:
        err = await refused(code, call)
        details = details_of(err)
        assert (details.reason, details.domain) == (reason, "relman.dev"), err.details()
        if code == Code.INVALID_ARGUMENT:
            assert details.fields == fields, err.details()
    # A client of the service gets the project's error back, with its reason and field.
    err = await refused(
        Code.INVALID_ARGUMENT, release_stub.CreateApp(pb.CreateAppRequest(name="Bad_Name"))
    )
    restored = error_from_rpc(err)
    assert isinstance(restored, errors.InvalidArgument)
    assert (restored.reason, restored.field) == (errors.INVALID_NAME, "name")
    assert str(restored).startswith('invalid app name "Bad_Name"')


# --- hostile ids and names -------------------------------------------------------------------

# Every id and name field of every call, and the free text ones: each takes the value ``v``
# while every other field of the request is valid (app "myapp", its release R and build B).
Request = Callable[[Stub, str, str, str], Awaitable[Any]]
FIELDS: dict[str, Request] = {
    "CreateApp.name": lambda s, v, r, b: s.CreateApp(pb.CreateAppRequest(name=v)),
    "GetApp.name": lambda s, v, r, b: s.GetApp(pb.GetAppRequest(name=v)),
    "DeleteApp.name": lambda s, v, r, b: s.DeleteApp(pb.DeleteAppRequest(name=v)),
    "ImportBuild.app": lambda s, v, r, b: import_build(s, v),
    "ImportBuild.images": lambda s, v, r, b: import_build(s, images={"web": "i", v: "i"}),
    "ImportBuild.description": lambda s, v, r, b: import_build(s, description=v),
    "ImportBuild.git_sha": lambda s, v, r, b: import_build(s, git_sha=v),
    "GetBuild.app": lambda s, v, r, b: s.GetBuild(pb.GetBuildRequest(app=v, id=b)),
    "GetBuild.id": lambda s, v, r, b: s.GetBuild(pb.GetBuildRequest(app="myapp", id=v)),
    "ListBuilds.app": lambda s, v, r, b: s.ListBuilds(pb.ListBuildsRequest(app=v)),
    "ListBuilds.page_token": lambda s, v, r, b: s.ListBuilds(
        pb.ListBuildsRequest(app="myapp", page_token=v)
    ),
    "GetEnv.app": lambda s, v, r, b: s.GetEnv(pb.GetEnvRequest(app=v)),
    "GetEnv.release_id": lambda s, v, r, b: s.GetEnv(pb.GetEnvRequest(app="myapp", release_id=v)),
    "ChangeEnv.app": lambda s, v, r, b: s.ChangeEnv(pb.ChangeEnvRequest(app=v, set={"A": "1"})),
    "ChangeEnv.set": lambda s, v, r, b: s.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set={v: "1"})),
    "ChangeEnv.unset": lambda s, v, r, b: s.ChangeEnv(pb.ChangeEnvRequest(app="myapp", unset=[v])),
    "CreateRelease.app": lambda s, v, r, b: s.CreateRelease(
        pb.CreateReleaseRequest(app=v, build_id=b)
    ),
    "CreateRelease.build_id": lambda s, v, r, b: s.CreateRelease(
        pb.CreateReleaseRequest(app="myapp", build_id=v)
    ),
    "CreateRelease.env": lambda s, v, r, b: s.CreateRelease(
        pb.CreateReleaseRequest(app="myapp", build_id=b, env={v: "1"})
    ),
    "CreateRelease.description": lambda s, v, r, b: s.CreateRelease(
        pb.CreateReleaseRequest(app="myapp", build_id=b, description=v)
    ),
    "GetRelease.app": lambda s, v, r, b: s.GetRelease(pb.GetReleaseRequest(app=v, id=r)),
    "GetRelease.id": lambda s, v, r, b: s.GetRelease(pb.GetReleaseRequest(app="myapp", id=v)),
    "ListReleases.app": lambda s, v, r, b: s.ListReleases(pb.ListReleasesRequest(app=v)),
    "ListReleases.page_token": lambda s, v, r, b: s.ListReleases(
        pb.ListReleasesRequest(app="myapp", page_token=v)
    ),
    "GetReleaseManifest.app": lambda s, v, r, b: s.GetReleaseManifest(
        pb.GetReleaseManifestRequest(app=v, id=r)
    ),
    "GetReleaseManifest.id": lambda s, v, r, b: s.GetReleaseManifest(
        pb.GetReleaseManifestRequest(app="myapp", id=v)
    ),
    "CreateReleaseFrom.app": lambda s, v, r, b: s.CreateReleaseFrom(
        pb.CreateReleaseFromRequest(app=v, build_from=r, env_from=r)
    ),
    "CreateReleaseFrom.build_from": lambda s, v, r, b: s.CreateReleaseFrom(
        pb.CreateReleaseFromRequest(app="myapp", build_from=v, use_active_release_env=True)
    ),
    "CreateReleaseFrom.env_from": lambda s, v, r, b: s.CreateReleaseFrom(
        pb.CreateReleaseFromRequest(app="myapp", use_active_release_build=True, env_from=v)
    ),
    "DiffReleases.app": lambda s, v, r, b: s.DiffReleases(
        pb.DiffReleasesRequest(app=v, from_id=r, to_id=r)
    ),
    "DiffReleases.from_id": lambda s, v, r, b: s.DiffReleases(
        pb.DiffReleasesRequest(app="myapp", from_id=v)
    ),
    "DiffReleases.to_id": lambda s, v, r, b: s.DiffReleases(
        pb.DiffReleasesRequest(app="myapp", to_id=v)
    ),
    "GetDeployable.app": lambda s, v, r, b: s.GetDeployable(pb.GetDeployableRequest(app=v)),
    "GetDeployable.release_id": lambda s, v, r, b: s.GetDeployable(
        pb.GetDeployableRequest(app="myapp", release_id=v)
    ),
    "CreateRollbackRelease.app": lambda s, v, r, b: s.CreateRollbackRelease(
        pb.CreateRollbackReleaseRequest(app=v, release_id=r)
    ),
    "CreateRollbackRelease.release_id": lambda s, v, r, b: s.CreateRollbackRelease(
        pb.CreateRollbackReleaseRequest(app="myapp", release_id=v)
    ),
    "ReportDeployment.app": lambda s, v, r, b: s.ReportDeployment(
        report_request(r, "DAAAAAAAAAA", types_pb2.OUTCOME_RUNNING, next_start(), app=v)
    ),
    "ReportDeployment.release_id": lambda s, v, r, b: s.ReportDeployment(
        report_request(v, "DAAAAAAAAAA", types_pb2.OUTCOME_RUNNING, next_start())
    ),
    "ReportDeployment.deployment_id": lambda s, v, r, b: s.ReportDeployment(
        report_request(r, v, types_pb2.OUTCOME_RUNNING, next_start())
    ),
    "ReportDeployment.reason": lambda s, v, r, b: s.ReportDeployment(
        report_request(r, "DAAAAAAAAAA", types_pb2.OUTCOME_FAILED, next_start(), reason=v)
    ),
}
# Not names: only a NUL byte is refused (a long image reference is not checked here).
NUL_ONLY = {"ImportBuild.images[web]"}
FIELDS["ImportBuild.images[web]"] = lambda s, v, r, b: import_build(s, images={"web": v})
HOSTILE = {
    "nul": "\x00",
    "nul-inside": "my\x00app",
    "nul-id": "RAAAAA\x00AAAA",
    "100kb": "a" * 100_000,
    "100kb-id": "R" + "A" * 100_000,
}


@pytest.mark.parametrize("active", [False, True], ids=["no-active-release", "active-release"])
async def test_a_nul_byte_or_100_kb_in_any_id_or_name_is_invalid_argument_in_few_words(
    release_server: ReleaseServer, active: bool
) -> None:
    stub = release_server.stub
    await make_app(stub)
    built = await import_build(stub)
    if active:
        await activate(stub, built.release.id)
    before = release_server.snapshot()
    wrong: list[tuple[str, str, str, str]] = []
    for field, call in FIELDS.items():
        for name, value in HOSTILE.items():
            if field in NUL_ONLY and "nul" not in name:
                continue
            try:
                await call(stub, value, built.release.id, built.build.id)
                wrong.append((field, name, "OK", ""))
            except grpc.aio.AioRpcError as err:
                message = str(err.details())
                if err.code() != Code.INVALID_ARGUMENT or len(message) >= 300 or "\x00" in message:
                    wrong.append((field, name, err.code().name, message[:300]))
    assert not wrong, "\n".join(map(repr, wrong))
    assert release_server.snapshot() == before


async def test_a_nul_byte_in_an_env_value_is_refused(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    build = (await import_build(stub)).build
    before = release_server.snapshot()
    msg = str((await refused(Code.INVALID_ARGUMENT, set_env(stub, A="x\x00y"))).details())
    assert msg == "invalid value for env key A: it holds a NUL character"
    await refused(
        Code.INVALID_ARGUMENT,
        stub.CreateRelease(
            pb.CreateReleaseRequest(app="myapp", build_id=build.id, env={"A": "\x00"})
        ),
    )
    assert release_server.snapshot() == before
