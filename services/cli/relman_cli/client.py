"""Channels and typed stubs for the Release service and the Deployer.

Commands reach a service only through :meth:`ServiceClient.call` and
:meth:`ServiceClient.stream`, naming the generated stub's method with a selector::

    response = client.release.call(lambda stub: stub.ListReleases, request)

so the request and response types are the stub's (a wrong request, or a streaming method
called as unary, is a type error), and the selector can only reach this service's stub. Each
call carries the caller's name as ``x-relman-actor`` metadata and the API token as
``authorization: Bearer``; every failed call becomes a :class:`CliError` carrying the
server's message (see :func:`cli_error`), so commands never see ``grpc`` errors and the user
never sees a traceback. The stub modules are imported only by the commands that use them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import grpc
from google.protobuf.message import Message
from relman_common.request_ids import REQUEST_ID_METADATA, new_request_id
from relman_common.vocabulary import MESSAGE_SIZE_OPTIONS

from relman_cli.config import Endpoints
from relman_cli.errors import CliError

if TYPE_CHECKING:
    from relman.v1.auth_pb2_grpc import TokenServiceStub
    from relman.v1.build_pb2_grpc import BuildServiceStub
    from relman.v1.deployer_pb2_grpc import DeployerServiceStub
    from relman.v1.release_pb2_grpc import ReleaseServiceStub

UNAUTHENTICATED_MESSAGE = "missing or invalid token (set RELMAN_TOKEN or use the local admin token)"

StubT = TypeVar("StubT")
RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)

ACTOR_METADATA = "x-relman-actor"
AUTHORIZATION_METADATA = "authorization"
UNARY_TIMEOUT_SECONDS = 60.0
DEFAULT_RETRY_SECONDS = 30.0
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0
RELEASE_SERVICE = "Release service"
DEPLOYER_SERVICE = "Deployer"

# gRPC's wording when there is no connection at all (as opposed to a service that answered
# UNAVAILABLE itself, e.g. a Deployer that cannot reach the Release service).
_NO_CONNECTION_HINTS = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "socket closed",
    "connection reset",
    "connections to all backends failing",
    "name resolution",
    "no route to host",
    "network is unreachable",
)


def actor() -> str:
    """Who the services record as the actor: ``$USER``, else ``relman``."""
    return (os.environ.get("USER") or os.environ.get("LOGNAME") or "relman")[:64]


def lost_connection(err: grpc.RpcError) -> bool:
    """Whether ``err`` means the connection failed (rather than the service refusing)."""
    code = err.code()
    if code != grpc.StatusCode.UNAVAILABLE:
        return False
    details = (err.details() or "").lower()
    return not details or any(hint in details for hint in _NO_CONNECTION_HINTS)


def cli_error(err: grpc.RpcError, service: str, addr: str) -> CliError:
    """The message a person should read for a failed call to ``service`` at ``addr``, with
    the call's status code name (``NOT_FOUND``) for a command that must tell answers apart."""
    error = _message(err, service, addr)
    code = err.code()
    error.code = code.name if code is not None else ""
    return error


def _message(err: grpc.RpcError, service: str, addr: str) -> CliError:
    code = err.code()
    details = err.details() or ""
    if lost_connection(err) and "handshake" in details.lower():
        return CliError(
            f"TLS handshake with the {service} at {addr} failed (is RELMAN_TLS_CA, or the "
            "rack's tls_ca, the CA that signed its certificate?)"
        )
    if lost_connection(err):
        return CliError(f"cannot reach the {service} at {addr} (is it running? try: make run)")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"the {service} at {addr} did not answer in time")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return CliError(details or UNAUTHENTICATED_MESSAGE)
    if details:
        return CliError(details)
    name = code.name.lower().replace("_", " ") if code is not None else "unknown error"
    return CliError(f"{service} at {addr}: {name}")


@dataclass(eq=False)
class ServiceClient(Generic[StubT]):
    """One service's channel and stub; :meth:`call` and :meth:`stream` are the only ways
    commands reach it.

    ``addr`` is one address or several, comma-separated (a rack's list): calls go to one of
    them, and a call answered UNAVAILABLE (or that cannot connect) is retried on the next one
    with exponential backoff for up to ``retry_for`` seconds. Writes are safe to retry: every
    call carries the command's ``request_id``, and the services answer a repeated id with the
    first call's result."""

    name: str
    addr: str
    make_stub: Callable[[grpc.Channel], StubT]
    token: str = field(default="", repr=False)
    # (CA, client certificate, client key) PEM paths, any may be empty; None: plaintext.
    tls: tuple[str, str, str] | None = None
    # Sent as x-relman-request-id with every call: one per command invocation, so a retried
    # write is answered with its first result instead of being made twice.
    request_id: str = ""
    retry_for: float = DEFAULT_RETRY_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _index: int = field(default=0, init=False, repr=False)
    _channel: grpc.Channel | None = field(default=None, init=False, repr=False)
    _stub: StubT | None = field(default=None, init=False, repr=False)

    @property
    def addrs(self) -> list[str]:
        """Every address of the service, in the order they are tried."""
        return [a.strip() for a in self.addr.split(",") if a.strip()] or [self.addr]

    @property
    def current(self) -> str:
        """The address calls go to now."""
        addrs = self.addrs
        return addrs[self._index % len(addrs)]

    def _opened(self) -> StubT:
        """The stub, on a channel opened on first use (it connects on the first call)."""
        if self._stub is None:
            options = [*MESSAGE_SIZE_OPTIONS, ("grpc.enable_retries", 0)]
            if self.tls is None:
                self._channel = grpc.insecure_channel(self.current, options=options)
            else:
                credentials = channel_credentials(*self.tls)
                self._channel = grpc.secure_channel(self.current, credentials, options=options)
            self._stub = self.make_stub(self._channel)
        return self._stub

    def next_endpoint(self) -> None:
        """Use the next address from now on, on a new channel (a channel that failed to
        connect waits out gRPC's reconnect backoff, up to minutes, before trying again)."""
        self.close()
        self._index += 1

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Who is calling: the actor's name, and the API token when there is one."""
        caller: tuple[tuple[str, str], ...] = ((ACTOR_METADATA, actor()),)
        if self.request_id:
            caller = (*caller, (REQUEST_ID_METADATA, self.request_id))
        if self.token:
            return (*caller, (AUTHORIZATION_METADATA, f"Bearer {self.token}"))
        return caller

    def retrying(self) -> Backoff:
        """The schedule of one call's retries (see :class:`Backoff`)."""
        return Backoff(self.clock() + self.retry_for, self.sleep, self.clock)

    def call(
        self,
        rpc: Callable[[StubT], grpc.UnaryUnaryMultiCallable[RequestT, ResponseT]],
        request: RequestT,
        timeout: float = UNARY_TIMEOUT_SECONDS,
    ) -> ResponseT:
        """A unary call of ``rpc(stub)``, retried over the addresses while the service is
        UNAVAILABLE; any failure becomes a :class:`CliError`."""
        backoff = self.retrying()
        while True:
            method = rpc(self._opened())
            try:
                return method(request, metadata=self.metadata(), timeout=timeout)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or not backoff.wait():
                    raise self.error(err) from None
            self.next_endpoint()

    def send(
        self,
        rpc: Callable[[StubT], grpc.StreamUnaryMultiCallable[RequestT, ResponseT]],
        requests: Iterator[RequestT],
    ) -> ResponseT:
        """A client stream of ``rpc(stub)`` (an upload), without a deadline: large archives
        take as long as they take. Not retried (the stream is read once). Any failure
        becomes a :class:`CliError`."""
        method = rpc(self._opened())
        try:
            return method(requests, metadata=self.metadata())
        except grpc.RpcError as err:
            raise self.error(err) from None

    def stream(
        self,
        rpc: Callable[[StubT], grpc.UnaryStreamMultiCallable[RequestT, ResponseT]],
        request: RequestT,
    ) -> Iterator[ResponseT]:
        """A server stream of ``rpc(stub)``, without a deadline: deployments take as long as
        they take.

        Errors surface while iterating, as ``grpc.RpcError``; the caller decides which are
        worth a reconnect (see :mod:`relman_cli.follow`, which moves to the next address with
        :meth:`next_endpoint`) and turns the rest into CliErrors with :meth:`error`.
        """
        return rpc(self._opened())(request, metadata=self.metadata())

    def error(self, err: grpc.RpcError) -> CliError:
        addrs = self.addrs
        return cli_error(err, self.name, self.current if len(addrs) == 1 else ", ".join(addrs))

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stub = None


@dataclass
class Backoff:
    """Exponential backoff until ``deadline`` (of ``clock``): :meth:`wait` sleeps the next
    delay and says True, or says False when that would pass the deadline."""

    deadline: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    delay: float = FIRST_BACKOFF_SECONDS

    def wait(self) -> bool:
        if self.clock() + self.delay > self.deadline:
            return False
        self.sleep(self.delay)
        self.delay = min(self.delay * 2, MAX_BACKOFF_SECONDS)
        return True


def channel_credentials(ca: str, cert: str, key: str) -> grpc.ChannelCredentials:
    """TLS credentials from PEM files: the CA to trust (the system's when empty) and, for
    mutual TLS, a client certificate with its key."""
    if bool(cert) != bool(key):
        raise CliError(
            "a TLS client certificate needs its key: set both RELMAN_TLS_CLIENT_CERT and "
            "RELMAN_TLS_CLIENT_KEY (or the rack's tls_client_cert and tls_client_key)"
        )

    def read(path: str) -> bytes | None:
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as err:
            raise CliError(f"cannot read TLS file {path}: {err.strerror or err}") from err

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert)
    )


def release_stub(channel: grpc.Channel) -> ReleaseServiceStub:
    from relman.v1 import release_pb2_grpc

    return release_pb2_grpc.ReleaseServiceStub(channel)


def build_stub(channel: grpc.Channel) -> BuildServiceStub:
    from relman.v1 import build_pb2_grpc

    return build_pb2_grpc.BuildServiceStub(channel)


def deployer_stub(channel: grpc.Channel) -> DeployerServiceStub:
    from relman.v1 import deployer_pb2_grpc

    return deployer_pb2_grpc.DeployerServiceStub(channel)


def token_stub(channel: grpc.Channel) -> TokenServiceStub:
    from relman.v1 import auth_pb2_grpc

    return auth_pb2_grpc.TokenServiceStub(channel)


class Client:
    """Both services at the endpoints of one rack (or of the environment)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        token = endpoints.token
        tls = (endpoints.tls_ca, endpoints.tls_cert, endpoints.tls_key) if endpoints.tls else None
        release, deployer = endpoints.release, endpoints.deployer
        # One request id for the whole command: its writes are each one call of a different
        # method (the services key results by caller, method and id).
        rid = new_request_id()
        retry = endpoints.retry_seconds
        self.release = ServiceClient(RELEASE_SERVICE, release, release_stub, token, tls, rid, retry)
        self.deployer = ServiceClient(
            DEPLOYER_SERVICE, deployer, deployer_stub, token, tls, rid, retry
        )
        # Builds are made by the Release service (its BuildService, on the same address).
        self.builds = ServiceClient(RELEASE_SERVICE, release, build_stub, token, tls, rid, retry)
        # Tokens are kept by the Release service (its TokenService, on the same address).
        self.tokens = ServiceClient(RELEASE_SERVICE, release, token_stub, token, tls, rid, retry)

    def close(self) -> None:
        self.release.close()
        self.deployer.close()
        self.tokens.close()
        self.builds.close()
