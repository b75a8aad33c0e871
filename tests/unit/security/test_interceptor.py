"""The shared interceptor authenticates every kind of RPC (the Deployer streams), sets the
principal and actor, logs no secrets; the verification cache. (The WhoAmI verifier that other
services use to check a user's token, against the real Release service, is in
tests/integration/security/test_interceptor.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from relman_common.actor import current_actor
from relman_common.auth import (
    UNAUTHENTICATED_MESSAGE,
    CachedAuthenticator,
    Principal,
    current_principal,
    require_token,
)
from relman_common.errors import NotFound, Unauthenticated, Unavailable
from relman_common.server import Service, keep_large_buffers_mapped
from support.security import metadata, wait_until

Code = grpc.StatusCode
GOOD = "rmt_" + "g" * 43
SERVICE_TOKEN = "rmt_" + "s" * 43
ECHO = "relman.test.Echo"


class TokenTable:
    """A real authenticator over a fixed table of tokens (no store needed here)."""

    def __init__(self) -> None:
        self.table = {
            GOOD: Principal("alice", "user"),
            SERVICE_TOKEN: Principal("deployer", "service"),
        }
        self.calls = 0

    async def __call__(self, token: str | None) -> Principal:
        self.calls += 1
        principal = self.table.get(require_token(token))
        if principal is None:
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
        return principal


def who() -> bytes:
    principal = current_principal()
    kind = principal.kind if principal else "-"
    return f"{current_actor()}/{kind}".encode()


async def unary(request: bytes, context: Any) -> bytes:
    if request == b"missing":
        raise NotFound("no such thing")
    return who()


async def server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield who()
    if request == b"missing":
        raise NotFound("no such thing")
    yield who()


async def endless(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """Three answers, then waits for news that never come (like a Watch of a quiet log)."""
    for _ in range(3):
        yield who()
    await asyncio.Event().wait()
    yield b"never"


async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return who() + b"".join([r async for r in requests])


async def bidi_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield who() + r


def echo_handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        ECHO,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "Endless": grpc.unary_stream_rpc_method_handler(endless),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi_stream),
        },
    )


@pytest.fixture
async def echo() -> AsyncIterator[grpc.aio.Channel]:
    service = Service(
        "127.0.0.1:0",
        lambda server: server.add_generic_rpc_handlers([echo_handlers()]),
        [ECHO],
        authenticate=TokenTable(),
    )
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            yield channel
    finally:
        await service.stop(grace=0)


async def call_every_kind(
    channel: grpc.aio.Channel, md: list[tuple[str, str]], send: bool = True
) -> list[Any]:
    """Each kind of RPC once; a status code for failures, the response bytes otherwise.

    With ``send=False`` the streaming requests never send a message, for calls the server
    refuses at once: a grpc.aio client whose write lands after the server's status replaces
    that status with INTERNAL (grpc/grpc#36066), which would make the refusal look flaky.
    """

    async def requests() -> AsyncIterator[bytes]:
        if not send:
            await asyncio.Event().wait()  # ends when the call ends and gRPC cancels us
        yield b"!"

    results: list[Any] = []
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: channel.unary_unary(f"/{ECHO}/Unary")(b"", metadata=md),
        lambda: _collect(channel.unary_stream(f"/{ECHO}/ServerStream")(b"", metadata=md)),
        lambda: channel.stream_unary(f"/{ECHO}/ClientStream")(requests(), metadata=md),
        lambda: _collect(channel.stream_stream(f"/{ECHO}/Bidi")(requests(), metadata=md)),
    ]
    for call in calls:
        try:
            results.append(await call())
        except grpc.aio.AioRpcError as err:
            results.append(err.code())
    return results


async def _first(stream: Any, n: int) -> AsyncIterator[bytes]:
    got = 0
    async for item in stream:
        yield item
        got += 1
        if got == n:
            return


async def _collect(stream: Any) -> list[bytes]:
    return [item async for item in stream]


async def test_every_kind_of_rpc_needs_a_token(echo: grpc.aio.Channel) -> None:
    for md in ([], metadata("rmt_unknown"), [("authorization", "Bearer")]):
        assert await call_every_kind(echo, md, send=False) == [Code.UNAUTHENTICATED] * 4


async def test_every_kind_of_rpc_sees_the_principal_and_actor(echo: grpc.aio.Channel) -> None:
    assert await call_every_kind(echo, metadata(GOOD, actor="mallory")) == [
        b"alice/user",
        [b"alice/user", b"alice/user"],
        b"alice/user!",
        [b"alice/user!"],
    ]
    on_behalf = metadata(SERVICE_TOKEN, actor="carol")
    assert (await call_every_kind(echo, on_behalf))[0] == b"carol/service"


async def test_errors_keep_their_codes_in_streams_and_unary_calls(echo: grpc.aio.Channel) -> None:
    md = metadata(GOOD)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await echo.unary_unary(f"/{ECHO}/Unary")(b"missing", metadata=md)
    assert (err.value.code(), err.value.details()) == (Code.NOT_FOUND, "no such thing")
    got: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for item in echo.unary_stream(f"/{ECHO}/ServerStream")(b"missing", metadata=md):
            got.append(item)
    assert (err.value.code(), got) == (Code.NOT_FOUND, [b"alice/user"])


async def test_request_log_lines_name_the_actor_and_never_the_token(
    echo: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relman.rpc")
    await call_every_kind(echo, metadata(SERVICE_TOKEN, actor="carol"))
    await call_every_kind(echo, metadata(GOOD))
    await call_every_kind(echo, metadata("rmt_" + "w" * 43))
    lines = [r.getMessage() for r in caplog.records if r.name == "relman.rpc"]
    assert len(lines) == 12
    assert f"rpc /{ECHO}/Unary OK" in lines[0] and "actor=carol via=deployer" in lines[0]
    assert "actor=alice peer=" in lines[4]
    assert "UNAUTHENTICATED" in lines[8] and "actor=anonymous" in lines[8]
    text = "\n".join(lines)
    assert not any(secret[4:] in text for secret in (GOOD, SERVICE_TOKEN, "rmt_" + "w" * 43))


async def test_clients_that_walk_away_from_streams_are_logged_and_harm_nothing(
    echo: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    """Each abandoned stream gets its one log line, as CANCELLED, and the server keeps
    serving. (The log line uses only values read when the call began: grpc 1.85 can crash
    when a cancelled stream's context is touched later, as the Deployer's Watch test showed.)"""
    caplog.set_level(logging.INFO, logger="relman.rpc")

    def cancelled_lines() -> int:
        return sum("Endless CANCELLED" in r.getMessage() for r in caplog.records)

    for i in range(1, 21):
        call = echo.unary_stream(f"/{ECHO}/Endless")(b"", metadata=metadata(GOOD))
        assert len([item async for item in _first(call, 3)]) == 3
        call.cancel()

        async def logged(count: int = i) -> bool:
            return cancelled_lines() == count

        await wait_until(logged, what="the log line of the abandoned stream")
    assert await call_every_kind(echo, metadata(GOOD)) != [Code.UNAUTHENTICATED] * 4


# --- the verification cache ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_remembers_successes_for_its_lifetime_only() -> None:
    table, clock = TokenTable(), Clock()
    cached = CachedAuthenticator(table, ttl=2.0, clock=clock)
    assert await cached(GOOD) == Principal("alice", "user")
    clock.now += 1.9
    await cached(GOOD)
    assert table.calls == 1
    clock.now += 0.2
    await cached(GOOD)
    assert table.calls == 2
    del table.table[GOOD]  # revoked elsewhere
    await cached(GOOD)  # still within the lifetime of the last answer
    clock.now += 2.1
    with pytest.raises(Unauthenticated):
        await cached(GOOD)


async def test_the_cache_never_remembers_failures_and_forgets_on_demand() -> None:
    table, clock = TokenTable(), Clock()
    cached = CachedAuthenticator(table, ttl=2.0, clock=clock)
    newcomer = "rmt_" + "n" * 43
    with pytest.raises(Unauthenticated):
        await cached(newcomer)
    table.table[newcomer] = Principal("nina", "user")
    assert (await cached(newcomer)).name == "nina"  # works as soon as it exists
    del table.table[newcomer]
    cached.forget("nina")
    with pytest.raises(Unauthenticated):
        await cached(newcomer)
    with pytest.raises(Unauthenticated):
        await cached(None)
    assert table.calls == 3  # a missing token is refused without a lookup


async def test_while_the_verifier_is_down_a_recently_verified_token_is_still_taken() -> None:
    table, clock = TokenTable(), Clock()
    down = False

    async def verify(token: str | None) -> Principal:
        if down:
            raise Unavailable("the Release service is unavailable")
        return await table(token)

    cached = CachedAuthenticator(verify, ttl=2.0, clock=clock, stale=60.0)
    await cached(GOOD)
    down = True
    clock.now += 59.0  # long past the lifetime, within the grace of an unreachable verifier
    assert await cached(GOOD) == Principal("alice", "user")
    newcomer = "rmt_" + "n" * 43
    table.table[newcomer] = Principal("nina", "user")
    with pytest.raises(Unavailable):
        await cached(newcomer)  # never verified: nothing to fall back on
    clock.now += 2.0
    with pytest.raises(Unavailable):
        await cached(GOOD)  # verified too long ago
    down = False
    await cached(GOOD)
    cached.forget("alice")
    down = True
    with pytest.raises(Unavailable):
        await cached(GOOD)  # a revocation here is not undone by the grace


async def test_a_verification_that_began_before_a_revocation_is_not_cached() -> None:
    revoked = False
    calls = 0
    cached: CachedAuthenticator

    async def verify(token: str | None) -> Principal:
        nonlocal calls
        calls += 1
        if revoked:
            raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
        cached.forget("alice")  # the revocation lands here while this lookup runs
        return Principal("alice", "user")

    cached = CachedAuthenticator(verify, ttl=2.0, clock=Clock())
    await cached(GOOD)  # answered from before the revocation
    revoked = True
    with pytest.raises(Unauthenticated):
        await cached(GOOD)  # asked again, not served from the cache
    assert calls == 2


async def test_a_service_given_a_list_of_addresses_refuses_to_listen_and_says_why() -> None:
    """RELMAN_RELEASE_ADDR may list replicas for clients; a service listens on one."""
    service = Service("127.0.0.1:50051,127.0.0.1:50061", lambda server: None, [])
    with pytest.raises(OSError, match="a service listens on one HOST:PORT"):
        await service.start()
    assert service.server is None


def test_large_buffers_are_kept_mapped_on_glibc() -> None:
    """The Release service fixes glibc's mmap threshold (memory through large uploads)."""
    assert keep_large_buffers_mapped() is True
