"""What the reliability tests share: figures, the two services as real processes, DB reads.

Figures: every test states what it measured with :func:`figure`, which prints one
``FIGURE name: text`` line (shown by ``pytest -s`` / ``-rA``) and, when ``RELMAN_FIGURES_FILE``
is set, appends the figure as one JSON line to that file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from relman.v1 import auth_pb2_grpc, deployer_pb2_grpc, release_pb2, release_pb2_grpc
from relman_common import tokens
from relman_common.auth import call_metadata
from relman_common.db import make_engine
from relman_deployer.__main__ import parse_args as deployer_args
from sqlalchemy import text
from support.deployer import manifest
from support.helpers import ServiceProcess, free_port

FIGURES_ENV = "RELMAN_FIGURES_FILE"
LEASE_TTL = 2.0
# Settings a developer's shell might hold, cleared so each test says what it runs with.
CLEAN_ENV = {
    "RELMAN_DATABASE_URL": "",
    "RELMAN_AUTH": "",
    "RELMAN_SECRET_KEY": "",
    "RELMAN_SECRET_KEY_FILE": "",
    "RELMAN_TOKEN": "",
    "RELMAN_DEPLOYER_TOKEN": "",
    "RELMAN_TLS_CERT": "",
    "RELMAN_TLS_KEY": "",
    "RELMAN_TLS_CLIENT_CA": "",
}


def figure(name: str, message: str, **data: Any) -> None:
    """Report a measured figure: printed, and appended as JSON to ``$RELMAN_FIGURES_FILE``."""
    print(f"FIGURE {name}: {message}")
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"figure": name, "text": message, **data}) + "\n")


def deployer_supports_auth() -> bool:
    """True once ``python -m relman_deployer`` takes ``--auth``."""
    try:
        deployer_args(["--auth"])
    except SystemExit:
        return False
    return True


def db_kind(url: str) -> str:
    return "postgres" if url.startswith("postgres") else "sqlite"


class Services:
    """The Release service and the Deployer as real processes sharing one ``--data-dir`` (and
    ``database_url`` when given, else a SQLite file each). Authentication is on for both when the
    Deployer supports it (the clients then send the admin token), else off for both."""

    def __init__(self, tmp_path: Path, database_url: str = "") -> None:
        self.tmp = tmp_path
        self.data_dir = tmp_path / "data"
        self.database_url = database_url
        self.auth = deployer_supports_auth()
        self.release_addr = f"127.0.0.1:{free_port()}"
        self.deployer_addr = f"127.0.0.1:{free_port()}"
        self.env = {**CLEAN_ENV, "RELMAN_DATABASE_URL": database_url}
        self.release_proc = self._release_process()
        self.deployer_proc: ServiceProcess | None = None
        self._channels: list[grpc.Channel] = []
        self.release = release_pb2_grpc.ReleaseServiceStub(self.channel(self.release_addr))
        self.tokens = auth_pb2_grpc.TokenServiceStub(self.channel(self.release_addr))
        self.deployer = deployer_pb2_grpc.DeployerServiceStub(self.channel(self.deployer_addr))

    def channel(self, addr: str) -> grpc.Channel:
        channel = grpc.insecure_channel(addr, options=[("grpc.max_reconnect_backoff_ms", 300)])
        self._channels.append(channel)
        return channel

    def _release_process(self) -> ServiceProcess:
        return ServiceProcess(
            "relman_release",
            [
                "--addr",
                self.release_addr,
                "--data-dir",
                str(self.data_dir),
                "--auth" if self.auth else "--no-auth",
            ],
            env=self.env,
            log_path=self.tmp / "release.log",
        )

    def start_release(self) -> ServiceProcess:
        """Starts (or starts again, on the same port and data dir) the Release service."""
        if self.release_proc.proc is not None:
            self.release_proc = self._release_process()
        return self.release_proc.start(self.release_addr)

    def start_deployer(self, pod_delay: float = 0.05) -> ServiceProcess:
        args = [
            "--addr",
            self.deployer_addr,
            "--release-addr",
            self.release_addr,
            "--data-dir",
            str(self.data_dir),
            "--sim-pod-delay",
            str(pod_delay),
            "--lease-ttl",
            str(LEASE_TTL),
        ]
        if self.auth:
            args.append("--auth")
        self.deployer_proc = ServiceProcess(
            "relman_deployer", args, env=self.env, log_path=self.tmp / "deployer.log"
        ).start(self.deployer_addr)
        return self.deployer_proc

    @property
    def token(self) -> str | None:
        """The admin token when authentication is on."""
        if not self.auth:
            return None
        return tokens.read_token_file(self.data_dir / tokens.ADMIN_TOKEN_FILE)

    def md(self, actor: str = "alice") -> list[tuple[str, str]]:
        return call_metadata(self.token, actor)

    def new_app(self, app: str, replicas: int = 2) -> str:
        """Creates ``app`` with one imported build; the id of its first release."""
        self.release.CreateApp(release_pb2.CreateAppRequest(name=app), metadata=self.md())
        resp = self.release.ImportBuild(
            release_pb2.ImportBuildRequest(
                app=app,
                manifest=manifest(replicas),
                images={"web": f"registry.example/{app}:web.1"},
                description="build 1",
            ),
            metadata=self.md(),
        )
        return str(resp.release.id)

    def url(self, service: str) -> str:
        """The database URL of ``service`` ("release" or "deployer")."""
        return self.database_url or f"sqlite:///{self.data_dir / (service + '.db')}"

    def rows(self, service: str, sql: str) -> list[tuple[Any, ...]]:
        engine = make_engine(self.url(service), pool_size=1)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.deployer_proc is not None:
            self.deployer_proc.stop()
        self.release_proc.stop()


def running_services(tmp_path: Path, database_url: str = "") -> Iterator[Services]:
    services = Services(tmp_path, database_url)
    services.start_release()
    try:
        yield services
    finally:
        services.close()
