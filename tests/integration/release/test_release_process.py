"""``python -m relman_release`` as a real process: health, reflection, configuration, state."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from relman.v1 import release_pb2 as pb
from relman.v1 import release_pb2_grpc
from support.helpers import ServiceProcess, authorized, free_port, grpc_serving, read_token


def reflected_services(addr: str) -> set[str]:
    with grpc.insecure_channel(addr) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return {s.name for r in responses for s in r.list_services_response.service}


def test_the_service_process_serves_health_and_reflection(
    release_process: ServiceProcess, tmp_path: Path
) -> None:
    assert grpc_serving(release_process.addr)
    assert "relman.v1.ReleaseService" in reflected_services(release_process.addr)
    assert (tmp_path / "data" / "release.db").exists()


def test_authentication_is_on_by_default(release_process: ServiceProcess, tmp_path: Path) -> None:
    with grpc.insecure_channel(release_process.addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        try:
            stub.ListApps(pb.ListAppsRequest(), timeout=10)
            raise AssertionError("a call without a token was served")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        admin = read_token(tmp_path / "data")
        authorized_stub = release_pb2_grpc.ReleaseServiceStub(authorized(channel, admin))
        assert list(authorized_stub.ListApps(pb.ListAppsRequest(), timeout=10).apps) == []


def test_state_survives_a_restart_and_every_request_is_logged(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    proc = ServiceProcess(
        "relman_release",
        [],
        env={
            "RELMAN_RELEASE_ADDR": addr,
            "RELMAN_DATA_DIR": str(tmp_path / "state"),
            "RELMAN_DATABASE_URL": "",
        },
        log_path=tmp_path / "release.log",
    )
    proc.start(addr)
    admin = read_token(tmp_path / "state")
    try:
        with authorized(grpc.insecure_channel(addr), admin) as channel:
            stub = release_pb2_grpc.ReleaseServiceStub(channel)
            stub.CreateApp(pb.CreateAppRequest(name="myapp"), timeout=10)
            changed = stub.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set={"A": "1"}), timeout=10)
    finally:
        assert proc.stop() == 0
    assert "/relman.v1.ReleaseService/CreateApp OK" in proc.logs()

    proc.start(addr)
    assert read_token(tmp_path / "state") == admin  # tokens survive a restart too
    try:
        with authorized(grpc.insecure_channel(addr), admin) as channel:
            stub = release_pb2_grpc.ReleaseServiceStub(channel)
            env = stub.GetEnv(pb.GetEnvRequest(app="myapp"), timeout=10)
    finally:
        proc.stop()
    assert (dict(env.env), env.release_id) == ({"A": "1"}, changed.release.id)


def test_database_url_flag_selects_postgresql(pg_url: str, tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    proc = ServiceProcess(
        "relman_release",
        ["--addr", addr, "--data-dir", str(tmp_path / "unused"), "--database-url", pg_url],
        log_path=tmp_path / "release.log",
    )
    proc.start(addr)
    try:
        admin = read_token(tmp_path / "unused")
        with authorized(grpc.insecure_channel(addr), admin) as channel:
            stub = release_pb2_grpc.ReleaseServiceStub(channel)
            stub.CreateApp(pb.CreateAppRequest(name="pgapp"), timeout=10)
    finally:
        proc.stop()
    assert not (tmp_path / "unused" / "release.db").exists()  # only its token files

    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT name FROM apps").fetchone()
        version = conn.execute("SELECT version_num FROM release_alembic_version").fetchone()
    assert row == ("pgapp",)
    assert version is not None
