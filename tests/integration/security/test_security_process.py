"""``python -m relman_release`` with --auth and TLS flags as a real process: first-start token
files, one announcement of the admin token, logs without secrets, refusals of bad settings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman.v1 import auth_pb2, auth_pb2_grpc, release_pb2_grpc
from relman.v1 import release_pb2 as pb
from relman_common import tokens
from relman_common.auth import call_metadata
from relman_common.tls import ClientTls, channel
from relman_release.__main__ import parse_args
from support.helpers import ServiceProcess, free_port
from support.security import Pki

# Settings a developer's shell might hold, cleared so each test says what it runs with.
CLEAN_ENV = {
    "RELMAN_DATABASE_URL": "",
    "RELMAN_AUTH": "",
    "RELMAN_SECRET_KEY": "",
    "RELMAN_SECRET_KEY_FILE": "",
    "RELMAN_TLS_CERT": "",
    "RELMAN_TLS_KEY": "",
    "RELMAN_TLS_CLIENT_CA": "",
    "RELMAN_BOOTSTRAP_TOKENS_DIR": "",
}
ANNOUNCEMENT = re.compile(r"^relman: created admin token \(saved to (.+)\): (rmt_\S+)$", re.M)


def release_process(tmp_path: Path, *args: str, **env: str) -> ServiceProcess:
    addr = f"127.0.0.1:{free_port()}"
    proc = ServiceProcess(
        "relman_release",
        ["--addr", addr, "--data-dir", str(tmp_path / "data"), *args],
        env={**CLEAN_ENV, **env},
        log_path=tmp_path / "release.log",
    )
    proc.addr = addr
    return proc


def test_first_start_with_auth_makes_private_token_files_and_announces_the_admin_token_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    proc = release_process(tmp_path, "--auth")
    proc.start(proc.addr)
    proc.stop()
    found = ANNOUNCEMENT.findall(proc.logs())
    assert found == [(str(data / "admin.token"), tokens.read_token_file(data / "admin.token"))]
    for name in ("admin.token", "deployer.token", "secret.key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    files = {p.name: p.read_text() for p in data.iterdir() if p.suffix in (".token", ".key")}

    again = release_process(tmp_path, RELMAN_AUTH="on")  # the switch from the environment
    again.start(again.addr)
    try:
        admin = tokens.read_token_file(data / "admin.token")
        with grpc.insecure_channel(again.addr) as ch:
            stub = auth_pb2_grpc.TokenServiceStub(ch)
            listed = stub.ListTokens(
                auth_pb2.ListTokensRequest(), metadata=call_metadata(admin), timeout=10
            )
            with pytest.raises(grpc.RpcError) as err:
                stub.ListTokens(auth_pb2.ListTokensRequest(), timeout=10)
    finally:
        again.stop()
    assert [(t.name, t.kind) for t in listed.tokens] == [
        ("admin", auth_pb2.TOKEN_KIND_ADMIN),
        ("deployer", auth_pb2.TOKEN_KIND_SERVICE),
    ]
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(ANNOUNCEMENT.findall(again.logs())) == 1  # still only the first start's line
    assert files == {
        p.name: p.read_text() for p in data.iterdir() if p.suffix in (".token", ".key")
    }


def list_tokens(addr: str, token: str) -> list[tuple[str, int]]:
    with grpc.insecure_channel(addr) as ch:
        stub = auth_pb2_grpc.TokenServiceStub(ch)
        listed = stub.ListTokens(
            auth_pb2.ListTokensRequest(), metadata=call_metadata(token), timeout=10
        )
    return [(t.name, t.kind) for t in listed.tokens]


def test_a_first_start_stores_the_tokens_an_operator_gave_and_later_starts_ignore_them(
    tmp_path: Path,
) -> None:
    given = tmp_path / "secret"  # as a Kubernetes Secret with two keys mounts
    given.mkdir()
    admin, deployer = tokens.generate(), tokens.generate()
    (given / "admin.token").write_text(admin + "\n")
    (given / "deployer.token").write_text(deployer)
    proc = release_process(tmp_path, "--auth", RELMAN_BOOTSTRAP_TOKENS_DIR=str(given))
    proc.start(proc.addr)
    try:
        assert list_tokens(proc.addr, admin) == [
            ("admin", auth_pb2.TOKEN_KIND_ADMIN),
            ("deployer", auth_pb2.TOKEN_KIND_SERVICE),
        ]
        with grpc.insecure_channel(proc.addr) as ch:  # the deployer's token is a live one
            stub = release_pb2_grpc.ReleaseServiceStub(ch)
            stub.ListApps(pb.ListAppsRequest(), metadata=call_metadata(deployer), timeout=10)
    finally:
        proc.stop()
    logs = proc.logs()
    assert f"relman: stored the admin and deployer tokens of {given}" in logs
    assert admin not in logs and deployer not in logs
    assert not ANNOUNCEMENT.findall(logs)

    # Tokens exist now: other secrets given later change nothing.
    (given / "admin.token").write_text(tokens.generate())
    again = release_process(tmp_path, "--auth", RELMAN_BOOTSTRAP_TOKENS_DIR=str(given))
    again.start(again.addr)
    try:
        assert [name for name, _ in list_tokens(again.addr, admin)] == ["admin", "deployer"]
    finally:
        again.stop()


def test_given_tokens_that_are_missing_or_malformed_stop_the_first_start_clearly(
    tmp_path: Path,
) -> None:
    given = tmp_path / "secret"
    given.mkdir()
    (given / "admin.token").write_text(tokens.generate())
    cases = [
        (None, f"cannot read a token from {given / 'deployer.token'}"),
        ("hunter2", f"{given / 'deployer.token'} does not hold a token: expected rmt_"),
        ((given / "admin.token").read_text(), "the admin and deployer tokens must differ"),
    ]
    for content, message in cases:
        if content is not None:
            (given / "deployer.token").write_text(content)
        done = subprocess.run(
            [sys.executable, "-m", "relman_release", "--addr", f"127.0.0.1:{free_port()}"],
            env={
                **os.environ,
                **CLEAN_ENV,
                "RELMAN_DATA_DIR": str(tmp_path / "data"),
                "RELMAN_BOOTSTRAP_TOKENS_DIR": str(given),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, message in done.stderr) == (1, True), done.stderr
        assert not (tmp_path / "data" / "admin.token").exists()


def test_without_auth_no_tokens_are_made_and_calls_need_none(tmp_path: Path) -> None:
    proc = release_process(tmp_path, "--no-auth")
    proc.start(proc.addr)
    try:
        with grpc.insecure_channel(proc.addr) as ch:
            stub = release_pb2_grpc.ReleaseServiceStub(ch)
            app = stub.CreateApp(
                pb.CreateAppRequest(name="myapp"), metadata=[("x-relman-actor", "dev")], timeout=10
            )
    finally:
        proc.stop()
    assert app.actor == "dev"
    assert not ANNOUNCEMENT.findall(proc.logs())
    assert not (tmp_path / "data" / "admin.token").exists()


def test_the_service_log_never_holds_token_secrets_or_env_values(tmp_path: Path) -> None:
    proc = release_process(tmp_path, "--auth")
    proc.start(proc.addr)
    data = tmp_path / "data"
    admin = tokens.read_token_file(data / "admin.token")
    deployer = tokens.read_token_file(data / "deployer.token")
    value = "pw-" + secrets.token_hex(12)
    try:
        with grpc.insecure_channel(proc.addr) as ch:
            releases = release_pb2_grpc.ReleaseServiceStub(ch)
            token_stub = auth_pb2_grpc.TokenServiceStub(ch)
            alice = token_stub.CreateToken(
                auth_pb2.CreateTokenRequest(name="alice"), metadata=call_metadata(admin), timeout=10
            ).secret
            md = call_metadata(alice)
            releases.CreateApp(pb.CreateAppRequest(name="myapp"), metadata=md, timeout=10)
            first = releases.ChangeEnv(
                pb.ChangeEnvRequest(app="myapp", set={"DB_PASSWORD": value}),
                metadata=md,
                timeout=10,
            )
            second = releases.ChangeEnv(
                pb.ChangeEnvRequest(app="myapp", set={"DB_PASSWORD": value + "-new"}),
                metadata=call_metadata(deployer, actor="carol"),
                timeout=10,
            )
            releases.GetEnv(pb.GetEnvRequest(app="myapp"), metadata=md, timeout=10)
            releases.DiffReleases(
                pb.DiffReleasesRequest(
                    app="myapp", from_id=first.release.id, to_id=second.release.id
                ),
                metadata=md,
                timeout=10,
            )
            with pytest.raises(grpc.RpcError):  # a refused value must not be echoed either
                releases.ChangeEnv(
                    pb.ChangeEnvRequest(app="myapp", set={"BAD KEY": value}),
                    metadata=md,
                    timeout=10,
                )
            token_stub.RevokeToken(
                auth_pb2.RevokeTokenRequest(name="alice"), metadata=call_metadata(admin), timeout=10
            )
            for wrong in (alice, admin[:-1] + "x", "Bearer " + admin):
                with pytest.raises(grpc.RpcError):
                    releases.ListApps(
                        pb.ListAppsRequest(), metadata=call_metadata(wrong), timeout=10
                    )
    finally:
        proc.stop()
    log = proc.logs()
    assert "/relman.v1.ReleaseService/ChangeEnv OK" in log
    assert "actor=carol via=deployer" in log and "actor=alice" in log
    assert log.count("UNAUTHENTICATED") == 3
    assert value not in log
    assert alice[4:] not in log and deployer[4:] not in log
    assert log.count(admin[4:]) == 1  # only in the first start's announcement


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--tls-cert", "cert.pem"], {}, "TLS needs both a certificate (--tls-cert) and a key"),
        (["--tls-cert", "nope.pem", "--tls-key", "nope.key"], {}, "TLS file not found: nope.pem"),
        ([], {"RELMAN_AUTH": "maybe"}, "RELMAN_AUTH must be on or off, not 'maybe'"),
    ],
)
def test_bad_security_flags_are_refused_before_anything_starts(
    args: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {**CLEAN_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as done:
        parse_args(args)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_or_bad_secret_key_stops_the_service_with_a_clear_message(
    tmp_path: Path,
) -> None:
    for extra, env, message in [
        (["--secret-key-file", "missing.key"], {}, "secret key file not found: missing.key"),
        ([], {"RELMAN_SECRET_KEY": "c2hvcnQ="}, "base64 of 32 bytes, not 5 bytes"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "relman_release", "--addr", f"127.0.0.1:{free_port()}", *extra],
            env={**os.environ, **CLEAN_ENV, "RELMAN_DATA_DIR": str(tmp_path), **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, message in done.stderr) == (1, True), done.stderr


def tls_serving(addr: str, tls: ClientTls) -> bool:
    """Whether the service at ``addr`` answers health checks over TLS as ``tls``."""
    with channel(addr, tls) as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def test_tls_settings_serve_mutual_tls_with_auth(tmp_path: Path, pki: Pki) -> None:
    client = ClientTls(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    proc = release_process(
        tmp_path,
        "--auth",
        "--tls-client-ca",
        str(pki.client_ca),
        RELMAN_TLS_CERT=str(pki.server_cert),
        RELMAN_TLS_KEY=str(pki.server_key),
    )
    proc.tls = client  # health is checked over mutual TLS: the service speaks nothing else
    proc.start(proc.addr)
    admin = tokens.read_token_file(tmp_path / "data" / "admin.token")
    try:
        with channel(proc.addr, client) as ch:
            stub = release_pb2_grpc.ReleaseServiceStub(ch)
            stub.ListApps(pb.ListAppsRequest(), metadata=call_metadata(admin), timeout=10)
        assert not tls_serving(proc.addr, ClientTls(ca=pki.ca))  # no client certificate
        with grpc.insecure_channel(proc.addr) as plain, pytest.raises(grpc.RpcError) as err:
            release_pb2_grpc.ReleaseServiceStub(plain).ListApps(
                pb.ListAppsRequest(), metadata=call_metadata(admin), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        proc.stop()
    assert "(mutual TLS), authentication on" in proc.logs()
