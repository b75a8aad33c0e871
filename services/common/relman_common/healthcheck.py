"""A container health check: ask a relman service's gRPC health service whether it serves.

    python -m relman_common.healthcheck release     # RELMAN_RELEASE_ADDR's port on loopback
    python -m relman_common.healthcheck deployer    # RELMAN_DEPLOYER_ADDR's port on loopback
    python -m relman_common.healthcheck 127.0.0.1:50051

Exit status 0 when ``grpc.health.v1.Health/Check`` of the whole server (service ``""``)
answers SERVING, 1 otherwise (with the reason on stderr): what Docker's ``HEALTHCHECK`` and
compose's ``healthcheck`` want. The service's listen address may be a wildcard
(``0.0.0.0:50051``); the check asks ``127.0.0.1`` on its port. Health checks need no token.
Plaintext only: a service started with ``--tls-cert`` needs another check.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relman_common.settings import DEPLOYER_ADDR, RELEASE_ADDR

TIMEOUT_SECONDS = 3.0
_ADDRESSES = {"release": RELEASE_ADDR, "deployer": DEPLOYER_ADDR}


def target(arg: str, environ: dict[str, str] | None = None) -> str:
    """The address to ask: ``release``/``deployer`` name the service's listen setting.

    >>> target("release", {"RELMAN_RELEASE_ADDR": "0.0.0.0:6000"})
    '127.0.0.1:6000'
    >>> target("deployer", {})
    '127.0.0.1:50052'
    >>> target("[::]:7000")
    '[::1]:7000'
    """
    setting = _ADDRESSES.get(arg)
    addr = setting.value(os.environ if environ is None else environ) if setting else arg
    host, _, port = addr.rpartition(":")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def check(addr: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """None when ``addr`` serves; otherwise why not."""
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as err:
            return f"{addr}: {err.code().name}: {err.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{addr}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m relman_common.healthcheck release|deployer|HOST:PORT",
            file=sys.stderr,
        )
        return 2
    why = check(target(args[0]))
    if why:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
