"""Real processes for the bench: free ports, deadline waits, services, and their memory.

The pattern is the one in ``tests/support/helpers.py`` (a copy, so the bench does not import
the test tree): start ``python -m MODULE`` and wait, with a deadline, until gRPC health says
SERVING.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_addr() -> str:
    return f"127.0.0.1:{free_port()}"


class ProcessExited(RuntimeError):
    """A process being waited for has exited: waiting longer cannot help."""


def wait_for(
    condition: Callable[[], T | None | bool],
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy, or raise after ``timeout`` s.

    Exceptions from ``condition`` count as "not yet", except :class:`ProcessExited`.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value  # type: ignore[return-value]
        except ProcessExited:
            raise
        except Exception as err:  # reported below if it never succeeds
            last_error = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")
        time.sleep(interval)


def grpc_serving(addr: str, timeout: float = 0.5) -> bool:
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def module_runs(module: str) -> bool:
    """True when ``python -m MODULE --help`` exits 0 (the service has been written)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


class ServiceProcess:
    """A service started as a real process (``python -m MODULE ...``), stderr to a log file."""

    def __init__(
        self,
        module: str,
        args: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.module = module
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.addr = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, addr: str, timeout: float = 60.0) -> ServiceProcess:
        self.addr = addr
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--addr", addr, *self.args],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
        wait_for(
            lambda: self._check_alive() and grpc_serving(addr),
            timeout=timeout,
            what=f"{self.module} serving on {addr}",
        )
        return self

    def _check_alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise ProcessExited(f"{self.module} exited with {self.proc.returncode}:\n{tail}")
        return True

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB, from /proc."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out
