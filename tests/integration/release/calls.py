"""Calls the Release service's gRPC tests make again and again, and how they read errors."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from relman.v1 import release_pb2 as pb
from relman.v1 import types_pb2
from relman_common.vocabulary import DEPLOYMENT, new_id

Code = grpc.StatusCode
Stub = Any  # relman.v1.release_pb2_grpc.ReleaseServiceStub over an aio channel

MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"
IMAGES = {"web": "registry.example/myapp:web.1"}


async def refused(code: grpc.StatusCode, call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Awaits ``call``, which must fail with ``code``; returns the error."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


async def expect(code: grpc.StatusCode, call: Awaitable[Any]) -> str:
    """Awaits ``call``, which must fail with ``code``; returns the message."""
    return str((await refused(code, call)).details())


@dataclass(frozen=True)
class Details:
    """The google.rpc details of a refused call."""

    reason: str
    domain: str
    fields: list[str]


def details_of(err: grpc.aio.AioRpcError) -> Details:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    assert status.code == err.code().value[0] and status.message == err.details()
    reason = domain = ""
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return Details(reason=reason, domain=domain, fields=fields)


async def make_app(stub: Stub, name: str = "myapp") -> pb.App:
    return await stub.CreateApp(pb.CreateAppRequest(name=name))


async def import_build(
    stub: Stub, app: str = "myapp", description: str = "build 0a1b2c3d4e first", **kw: Any
) -> pb.ImportBuildResponse:
    request = pb.ImportBuildRequest(
        app=app,
        manifest=kw.pop("manifest", MANIFEST),
        images=kw.pop("images", IMAGES),
        description=description,
        git_sha=kw.pop("git_sha", "0a1b2c3d4e5f60718293"),
    )
    return await stub.ImportBuild(request, **kw)


async def set_env(stub: Stub, app: str = "myapp", **env: str) -> pb.ChangeEnvResponse:
    return await stub.ChangeEnv(pb.ChangeEnvRequest(app=app, set=env))


_last_start = datetime(2000, 1, 1, tzinfo=UTC)


def next_start() -> datetime:
    """A start time later than every one handed out before: deployments started one after
    the other in a test are ordered as they were started."""
    global _last_start
    _last_start = max(datetime.now(UTC), _last_start + timedelta(milliseconds=1))
    return _last_start


def pb_time(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def report_request(
    release_id: str,
    deployment_id: str,
    outcome: types_pb2.Outcome.ValueType,
    started: datetime,
    app: str = "myapp",
    reason: str = "",
) -> pb.ReportDeploymentRequest:
    return pb.ReportDeploymentRequest(
        deployment_id=deployment_id,
        app=app,
        release_id=release_id,
        outcome=outcome,
        reason=reason,
        started=pb_time(started),
    )


async def report(
    stub: Stub,
    release_id: str,
    deployment_id: str,
    outcome: types_pb2.Outcome.ValueType,
    started: datetime | None = None,
    app: str = "myapp",
    reason: str = "",
) -> pb.ReportDeploymentResponse:
    """What a Deployer reports about deployment ``deployment_id`` of ``release_id`` (started
    now by default, i.e. after every deployment reported before it)."""
    request = report_request(
        release_id, deployment_id, outcome, started or next_start(), app, reason
    )
    return await stub.ReportDeployment(request)


async def activate(stub: Stub, release_id: str, app: str = "myapp") -> pb.ReportDeploymentResponse:
    """A newly started deployment of the release succeeded: the release is active."""
    resp = await report(stub, release_id, new_id(DEPLOYMENT), types_pb2.OUTCOME_SUCCEEDED, app=app)
    assert resp.current and resp.release.status == pb.RELEASE_STATUS_ACTIVE
    return resp


async def list_all(stub: Stub, app: str = "myapp", limit: int = 0) -> list[pb.Release]:
    resp = await stub.ListReleases(pb.ListReleasesRequest(app=app, limit=limit))
    return list(resp.releases)
