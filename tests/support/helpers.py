"""Helpers shared by the test suites: free ports, deadline waits, real service processes,
and channels that carry an API token on every call."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman_common import tokens
from relman_common.tls import ClientTls

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None | bool],
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value  # type: ignore[return-value]
        except Exception as err:  # reported below if it never succeeds
            last_error = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")
        time.sleep(interval)


def grpc_serving(addr: str, timeout: float = 0.5, tls: ClientTls | None = None) -> bool:
    """Whether ``addr`` answers its health check with SERVING (over TLS when ``tls``)."""
    opened = (
        grpc.insecure_channel(addr) if tls is None else grpc.secure_channel(addr, tls.credentials())
    )
    with opened as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING


class ServiceProcess:
    """A relman service started as a real process (``python -m MODULE ...``)."""

    def __init__(
        self,
        module: str,
        args: list[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.module = module
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.tls = tls  # how to reach it when it serves TLS (for the health check)
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""

    def start(self, addr: str, timeout: float = 90.0) -> ServiceProcess:
        self.addr = addr
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=REPO,
        )
        wait_for(
            lambda: self._check_alive() and grpc_serving(addr, tls=self.tls),
            timeout=timeout,
            what=f"{self.module} serving on {addr}",
        )
        return self

    def _check_alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text()[-3000:] if self.log_path else ""
            raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{tail}")
        return True

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


# --- tokens ----------------------------------------------------------------------------------


def read_token(data_dir: Path, name: str = tokens.ADMIN_TOKEN_FILE, timeout: float = 15.0) -> str:
    """The token a Release service with authentication wrote to ``data_dir/name`` on its first
    start (waiting for the file up to ``timeout`` s)."""
    path = data_dir / name
    return wait_for(
        lambda: path.exists() and tokens.read_token_file(path),
        timeout=timeout,
        what=f"token file {path}",
    )


def with_token(metadata: Sequence[tuple[str, Any]] | None, token: str) -> list[tuple[str, Any]]:
    """``metadata`` plus ``authorization: Bearer token``, unless it carries one already."""
    pairs = [(str(k), v) for k, v in (metadata or ())]
    if token and not any(k == "authorization" for k, _ in pairs):
        pairs.append(("authorization", f"Bearer {token}"))
    return pairs


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _CallDetails(_Details, grpc.ClientCallDetails):  # type: ignore[misc]
    pass


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, token: Callable[[Sequence[tuple[str, Any]]], str]) -> None:
        self._token = token

    def _details(self, details: Any) -> _CallDetails:
        metadata = list(details.metadata or ())
        return _CallDetails(
            details.method,
            details.timeout,
            with_token(metadata, self._token(metadata)),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def authorized(channel: grpc.Channel, token: str | Callable[[], str]) -> grpc.Channel:
    """A blocking channel whose calls carry ``token`` (unless a call brings its own); a
    callable is asked on every call (for a token that exists only once a service started)."""
    get = token if callable(token) else (lambda: token)
    return grpc.intercept_channel(channel, _TokenInterceptor(lambda _metadata: get()))


class _AioTokens:
    def __init__(self, token: Callable[[Sequence[tuple[str, Any]]], str]) -> None:
        self._token = token

    def details(self, details: Any) -> grpc.aio.ClientCallDetails:
        metadata = list(details.metadata or ())
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*with_token(metadata, self._token(metadata))),
            details.credentials,
            details.wait_for_ready,
        )


class _AioUnaryTokens(_AioTokens, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


class _AioStreamTokens(_AioTokens, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.details(details), request)


def aio_token_interceptors(
    token: Callable[[Sequence[tuple[str, Any]]], str],
) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for an asyncio channel that give every unary and server-streaming call the
    token ``token(metadata)`` chooses from the call's metadata (unless the call brings its own
    authorization). asyncio channels file each interceptor under one kind only, hence two."""
    return [_AioUnaryTokens(token), _AioStreamTokens(token)]
