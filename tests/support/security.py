"""What the security tests share (tests/unit/security, tests/integration/security, and the CLI's
TLS tests): a Release service with authentication on, its bootstrap tokens, and certificates
made on the spot with ``cryptography``. The folders' conftest.py import the fixtures.

``secure_server`` runs the real service (real store, real gRPC on a loopback port) inside the
test's event loop on each database of ``db_url``, with ``--auth`` semantics: the token store is
bootstrapped exactly as on a first start, so ``admin`` and ``deployer`` tokens exist and their
secrets are read back from the token files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from relman.v1 import auth_pb2, auth_pb2_grpc, release_pb2_grpc
from relman_common import tokens
from relman_common.auth import call_metadata
from relman_common.secretbox import SecretBox
from relman_common.server import Service
from relman_common.tls import ServerTls
from relman_release.api.server import bootstrap_token_files, build_service
from relman_release.store.uow import SqlUnitOfWork, open_store
from sqlalchemy import text
from support.helpers import free_port

TABLES = ("apps", "builds", "releases", "api_tokens")


def metadata(token: str | None, actor: str = "") -> list[tuple[str, str]]:
    return call_metadata(token, actor)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], deadline_s: float = 15.0, what: str = "condition"
) -> None:
    """Polls an async ``condition`` until it holds, or fails after ``deadline_s`` s."""
    deadline = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class SecureServer:
    addr: str
    data_dir: Path
    uow: SqlUnitOfWork
    box: SecretBox
    service: Service
    admin: str
    deployer: str
    channel: grpc.aio.Channel
    release: Any = field(init=False)  # ReleaseServiceStub
    tokens: Any = field(init=False)  # TokenServiceStub

    def __post_init__(self) -> None:
        self.release = release_pb2_grpc.ReleaseServiceStub(self.channel)
        self.tokens = auth_pb2_grpc.TokenServiceStub(self.channel)

    async def new_token(
        self, name: str, kind: auth_pb2.TokenKind.ValueType = auth_pb2.TOKEN_KIND_UNSPECIFIED
    ) -> str:
        """A new token made by the admin (a user token unless ``kind`` says otherwise);
        returns its secret."""
        created = await self.tokens.CreateToken(
            auth_pb2.CreateTokenRequest(name=name, kind=kind), metadata=metadata(self.admin)
        )
        return str(created.secret)

    def snapshot(self) -> list[tuple[object, ...]]:
        """Every row of every table, ordered: equal snapshots mean nothing changed."""
        rows: list[tuple[object, ...]] = []
        with self.uow.engine.connect() as conn:
            for table in TABLES:
                key = "id" if table == "apps" else "seq"
                rows += [
                    (table, *r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
                ]
        return rows


async def start_secure_server(
    db_url: str,
    data_dir: Path,
    box: SecretBox | None = None,
    tls: ServerTls | None = None,
    connect: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel,
) -> SecureServer:
    box = box or SecretBox(SecretBox.generate_key())
    uow = open_store(db_url, box)
    bootstrap_token_files(uow, data_dir)
    addr = f"127.0.0.1:{free_port()}"
    service = build_service(addr, uow, auth=True, tls=tls)
    await service.start()
    return SecureServer(
        addr=addr,
        data_dir=data_dir,
        uow=uow,
        box=box,
        service=service,
        admin=tokens.read_token_file(data_dir / tokens.ADMIN_TOKEN_FILE),
        deployer=tokens.read_token_file(data_dir / tokens.DEPLOYER_TOKEN_FILE),
        channel=connect(addr),
    )


@pytest.fixture
async def secure_server(db_url: str, tmp_path: Path) -> AsyncIterator[SecureServer]:
    server = await start_secure_server(db_url, tmp_path / "data")
    try:
        yield server
    finally:
        await server.channel.close()
        await server.service.stop(grace=0)


# --- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A server CA and a server certificate for localhost/127.0.0.1, and a separate client CA
    with one client certificate (all PEM files under one directory)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate signed by a CA the server does not trust
    stranger_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key, client_ca_key, stranger_ca_key = _key(), _key(), _key()
    server_key, client_key, stranger_key = _key(), _key(), _key()
    ca = _cert("relman test CA", ca_key)
    client_ca = _cert("relman test client CA", client_ca_key)
    server = _cert("localhost", server_key, ("relman test CA", ca_key), server=True)
    client = _cert("alice", client_key, ("relman test client CA", client_ca_key))
    stranger = _cert("mallory", stranger_key, ("someone else's CA", stranger_ca_key))
    return Pki(
        ca=write("ca.pem", pem(ca)),
        server_cert=write("server.pem", pem(server)),
        server_key=write("server.key", _pem_key(server_key)),
        client_ca=write("client-ca.pem", pem(client_ca)),
        client_cert=write("client.pem", pem(client)),
        client_key=write("client.key", _pem_key(client_key)),
        stranger_cert=write("stranger.pem", pem(stranger)),
        stranger_key=write("stranger.key", _pem_key(stranger_key)),
    )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")
