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
    Client,
    ServiceClient,
    release_stub,
)
from relman_cli.config import Endpoints
from relman_cli.errors import CliError
from relman_common.request_ids import REQUEST_ID_METADATA
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
    """Without retries (those have tests of their own below)."""
    return ServiceClient(RELEASE_SERVICE, ADDR, lambda _channel: stub, token, retry_for=0)


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
    """Retried for a second (a few attempts on new channels), then named."""
    addr = f"127.0.0.1:{free_port()}"
    client = ServiceClient(RELEASE_SERVICE, addr, release_stub, retry_for=1.0)
    try:
        with pytest.raises(CliError) as raised:
            client.call(lambda s: s.ListApps, release_pb2.ListAppsRequest(), timeout=10)
    finally:
        client.close()
    assert str(raised.value) == (
        f"cannot reach the {RELEASE_SERVICE} at {addr} (is it running? try: make run)"
    )


# --- retries over a rack's addresses ----------------------------------------------------------


@dataclass
class FakeTime:
    """A clock that moves only when slept on."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class Flaky(Method):
    """Fails with each of ``failures`` in turn, then answers; records the address of each
    call."""

    def __init__(self, client: list[ServiceClient[FakeStub]], failures: list[Refused]) -> None:
        super().__init__(answer=release_pb2.App(name="myapp"))
        self.client = client
        self.failures = failures
        self.addresses: list[str] = []

    def __call__(self, request: object, **kwargs: object) -> object:
        self.addresses.append(self.client[0].current)
        self.calls.append((request, kwargs))
        if self.failures:
            raise self.failures.pop(0)
        return self.answer


def flaky_client(
    failures: list[Refused], retry_for: float, addr: str = "a:1, b:2,c:3"
) -> tuple[ServiceClient[FakeStub], Flaky, FakeTime]:
    holder: list[ServiceClient[FakeStub]] = []
    method = Flaky(holder, failures)
    stub = FakeStub(GetApp=method)
    time_ = FakeTime()
    client = ServiceClient(
        RELEASE_SERVICE,
        addr,
        lambda _channel: stub,
        request_id="r-1",
        retry_for=retry_for,
        sleep=time_.sleep,
        clock=time_.clock,
    )
    holder.append(client)
    return client, method, time_


UNREACHABLE = Refused(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")


def test_unavailable_is_retried_on_the_next_address_with_backoff_and_the_same_request_id() -> None:
    busy = Refused(grpc.StatusCode.UNAVAILABLE, "the database is unavailable: retry later")
    client, method, time_ = flaky_client([UNREACHABLE, busy, UNREACHABLE], retry_for=30)
    try:
        answer = client.call(lambda s: s.GetApp, release_pb2.GetAppRequest(name="myapp"))
    finally:
        client.close()
    assert answer == release_pb2.App(name="myapp")
    assert method.addresses == ["a:1", "b:2", "c:3", "a:1"]
    assert time_.slept == [0.1, 0.2, 0.4]
    ids = [dict(kwargs["metadata"])["x-relman-request-id"] for _, kwargs in method.calls]  # type: ignore[call-overload]
    assert ids == ["r-1"] * 4


def test_retries_end_at_the_deadline_naming_every_address() -> None:
    client, method, time_ = flaky_client([UNREACHABLE] * 100, retry_for=1.0)
    try:
        with pytest.raises(CliError) as raised:
            client.call(lambda s: s.GetApp, release_pb2.GetAppRequest(name="myapp"))
    finally:
        client.close()
    # 0.1 + 0.2 + 0.4 slept; 0.8 more would pass the second.
    assert time_.slept == [0.1, 0.2, 0.4]
    assert len(method.addresses) == 4
    assert str(raised.value) == (
        f"cannot reach the {RELEASE_SERVICE} at a:1, b:2, c:3 (is it running? try: make run)"
    )


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.FAILED_PRECONDITION,
    ],
)
def test_answers_other_than_unavailable_are_not_retried(code: grpc.StatusCode) -> None:
    client, method, time_ = flaky_client([Refused(code, "no")], retry_for=30)
    try:
        with pytest.raises(CliError):
            client.call(lambda s: s.GetApp, release_pb2.GetAppRequest(name="myapp"))
    finally:
        client.close()
    assert len(method.calls) == 1 and time_.slept == []


def test_a_command_sends_one_request_id_to_both_services_and_the_next_command_another() -> None:
    endpoints = Endpoints("127.0.0.1:1", "127.0.0.1:2,127.0.0.1:3")
    first, second = Client(endpoints), Client(endpoints)
    try:
        ids = {
            dict(c.metadata())[REQUEST_ID_METADATA]
            for c in (first.release, first.deployer, first.builds, first.tokens)
        }
        assert len(ids) == 1
        assert dict(second.release.metadata())[REQUEST_ID_METADATA] not in ids
        assert first.deployer.addrs == ["127.0.0.1:2", "127.0.0.1:3"]
        assert first.deployer.retry_for == endpoints.retry_seconds == 30.0
    finally:
        first.close()
        second.close()
