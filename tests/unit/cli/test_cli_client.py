"""The CLI's one way to call a service: the typed wrapper around the generated stubs.

Proves: a call runs the stub method the selector names, with the actor and token as metadata
and a deadline (a stream without one); every failure becomes one CliError with the message a
person should read, not chained to the grpc error, for fake stubs and for a real stub on a
port nobody listens on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import pytest
from relman.v1 import deployer_pb2, release_pb2
from relman_cli.client import (
    RELEASE_SERVICE,
    UNARY_TIMEOUT_SECONDS,
    UNAUTHENTICATED_MESSAGE,
    ServiceClient,
    release_stub,
)
from relman_cli.errors import CliError
from support.helpers import free_port

ADDR = "127.0.0.1:1"


class Refused(grpc.RpcError):
    """What a failed call raises: a grpc.RpcError with a code and details."""

    def __init__(self, code: grpc.StatusCode, details: str | None) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


@dataclass
class Method:
    """A stub method: records how it was called, answers or fails as told."""

    answer: object = None
    failure: grpc.RpcError | None = None
    calls: list[tuple[object, dict[str, object]]] = field(default_factory=list)

    def __call__(self, request: object, **kwargs: object) -> object:
        self.calls.append((request, kwargs))
        if self.failure is not None:
            raise self.failure
        return self.answer


@dataclass
class FakeStub:
    GetApp: Method = field(default_factory=Method)
    Watch: Method = field(default_factory=Method)


def fake_client(stub: FakeStub, token: str = "") -> ServiceClient[FakeStub]:
    return ServiceClient(RELEASE_SERVICE, ADDR, lambda _channel: stub, token)


def test_a_call_runs_the_selected_method_with_actor_token_and_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER", "alice")
    app = release_pb2.App(name="myapp")
    stub = FakeStub(GetApp=Method(answer=app))
    client = fake_client(stub, token="rmt_x")
    request = release_pb2.GetAppRequest(name="myapp")
    try:
        assert client.call(lambda s: s.GetApp, request) is app
    finally:
        client.close()
    [(sent, kwargs)] = stub.GetApp.calls
    assert sent is request
    assert kwargs == {
        "metadata": (("x-relman-actor", "alice"), ("authorization", "Bearer rmt_x")),
        "timeout": UNARY_TIMEOUT_SECONDS,
    }


def test_a_stream_has_no_deadline() -> None:
    updates = iter([deployer_pb2.DeploymentUpdate()])
    stub = FakeStub(Watch=Method(answer=updates))
    client = fake_client(stub)
    try:
        assert client.stream(lambda s: s.Watch, deployer_pb2.WatchRequest()) is updates
    finally:
        client.close()
    [(_, kwargs)] = stub.Watch.calls
    assert set(kwargs) == {"metadata"}


ADDRESSED = f"the {RELEASE_SERVICE} at {ADDR}"


@pytest.mark.parametrize(
    ("code", "details", "message"),
    [
        (grpc.StatusCode.NOT_FOUND, "app not found: myapp", "app not found: myapp"),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: connection refused",
            f"cannot reach {ADDRESSED} (is it running? try: make run)",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            None,
            f"cannot reach {ADDRESSED} (is it running? try: make run)",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: Ssl handshake failed",
            f"TLS handshake with {ADDRESSED} failed (is RELMAN_TLS_CA, or the rack's tls_ca, "
            "the CA that signed its certificate?)",
        ),
        # A service that answers UNAVAILABLE itself is heard, not taken for a lost connection.
        (
            grpc.StatusCode.UNAVAILABLE,
            "the Release service is busy: retry later",
            "the Release service is busy: retry later",
        ),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "", f"{ADDRESSED} did not answer in time"),
        (grpc.StatusCode.UNAUTHENTICATED, "", UNAUTHENTICATED_MESSAGE),
        (grpc.StatusCode.UNAUTHENTICATED, "token revoked", "token revoked"),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "",
            f"{RELEASE_SERVICE} at {ADDR}: permission denied",
        ),
    ],
)
def test_every_failed_call_becomes_one_cli_error_a_person_can_read(
    code: grpc.StatusCode, details: str | None, message: str
) -> None:
    stub = FakeStub(GetApp=Method(failure=Refused(code, details)))
    client = fake_client(stub)
    try:
        with pytest.raises(CliError) as raised:
            client.call(lambda s: s.GetApp, release_pb2.GetAppRequest(name="myapp"))
    finally:
        client.close()
    assert str(raised.value) == message
    assert type(raised.value) is CliError
    # Commands (and the traceback a bug would print) never see the grpc error.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_real_stub_on_a_closed_port_is_a_cli_error_naming_the_service() -> None:
    addr = f"127.0.0.1:{free_port()}"
    client = ServiceClient(RELEASE_SERVICE, addr, release_stub)
    try:
        with pytest.raises(CliError) as raised:
            client.call(lambda s: s.ListApps, release_pb2.ListAppsRequest(), timeout=10)
    finally:
        client.close()
    assert str(raised.value) == (
        f"cannot reach the {RELEASE_SERVICE} at {addr} (is it running? try: make run)"
    )
