"""The client code shared by floors and relman measurements: closed-loop unary clients and
stream consumers. Using the same code against the echo floor and the services is what makes
their ratio mean something.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from relman.v1 import deployer_pb2

from bench.stats import summarize_ms

# One unary operation: given the client's channel, the client number and the call number.
UnaryOp = Callable[[grpc.aio.Channel, int, int], Awaitable[object]]

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

# The bearer token each address wants (relman services demand one by default). The echo floor
# is given a token of the same shape, so both carry the same metadata.
TOKENS: dict[str, str] = {}


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# One class per call kind: grpc.aio files an interceptor under the first kind it implements.
class _UnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self.token), request)


class _StreamBearer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self.token), request)


class _UploadBearer(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_token(details, self.token), request_iterator)


def channel(addr: str, own_connection: bool = False) -> grpc.aio.Channel:
    """A channel to ``addr`` (with its token from TOKENS, if any); ``own_connection`` gives it
    a TCP connection no other channel of this process shares (gRPC otherwise pools
    connections with the same target and options)."""
    options = [*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    token = TOKENS.get(addr)
    return grpc.aio.insecure_channel(
        addr,
        options=options or CHANNEL_OPTIONS,
        interceptors=[_UnaryBearer(token), _StreamBearer(token), _UploadBearer(token)]
        if token
        else None,
    )


@dataclass
class Timing:
    """Latency samples (seconds) and the wall time of the phase that produced them."""

    samples: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def add(self, other: Timing) -> None:
        self.samples.extend(other.samples)
        self.elapsed_s += other.elapsed_s

    def summary(self, clients: int) -> dict[str, Any]:
        return {"clients": clients, **summarize_ms(self.samples, self.elapsed_s)}


async def time_unary(
    addr: str,
    op: UnaryOp,
    *,
    clients: int,
    calls_per_client: int,
    warmup_per_client: int,
    first_call: int = 0,
) -> Timing:
    """``clients`` concurrent closed-loop clients, each on its own channel, each making
    ``warmup_per_client`` unmeasured calls, then (all together) ``calls_per_client`` measured
    ones, numbered from ``first_call``. Timing covers the measured phase only.
    """
    barrier = asyncio.Barrier(clients + 1)
    timing = Timing()
    warm_end = first_call + warmup_per_client

    async def client(n: int) -> None:
        async with channel(addr) as ch:
            for i in range(first_call, warm_end):
                await op(ch, n, i)
            await barrier.wait()
            for i in range(warm_end, warm_end + calls_per_client):
                t0 = time.perf_counter()
                await op(ch, n, i)
                timing.samples.append(time.perf_counter() - t0)

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await barrier.wait()
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    timing.elapsed_s = time.perf_counter() - start
    return timing


async def run_unary(
    addr: str, op: UnaryOp, *, clients: int, calls_per_client: int, warmup_per_client: int
) -> dict[str, Any]:
    """:func:`time_unary`, summarized: latency percentiles and calls/s."""
    timing = await time_unary(
        addr,
        op,
        clients=clients,
        calls_per_client=calls_per_client,
        warmup_per_client=warmup_per_client,
    )
    return timing.summary(clients)


@dataclass
class StreamResult:
    """What one client saw on one deployment stream."""

    first: deployer_pb2.Deployment | None = None
    last: deployer_pb2.Deployment | None = None
    seqs: list[int] = field(default_factory=list)
    # (seq, event time as epoch seconds, receive time as epoch seconds, reason)
    received: list[tuple[int, float, float, str]] = field(default_factory=list)
    # (seq, source, reason, message): what is compared with the stored log
    events: list[tuple[int, str, str, str]] = field(default_factory=list)
    messages: int = 0
    opened_at: float = 0.0  # epoch seconds when the call was made
    last_received_at: float = 0.0
    error: str = ""

    @property
    def deployment_id(self) -> str:
        return self.first.id if self.first is not None else ""

    def gaps_or_duplicates(self, last_seq: int) -> bool:
        """True unless exactly the events 1..last_seq arrived, in order, once each."""
        return self.seqs != list(range(1, last_seq + 1))


async def consume(
    stream: AsyncIterable[deployer_pb2.DeploymentUpdate], result: StreamResult | None = None
) -> StreamResult:
    """Read a DeploymentUpdate stream to its end, noting what arrived and when."""
    res = result or StreamResult()
    if not res.opened_at:
        res.opened_at = time.time()
    try:
        async for update in stream:
            now = time.time()
            res.messages += 1
            res.last_received_at = now
            if update.HasField("event"):
                ev = update.event
                res.seqs.append(ev.seq)
                res.received.append((ev.seq, ev.time.ToNanoseconds() / 1e9, now, ev.reason))
                res.events.append((ev.seq, ev.source, ev.reason, ev.message))
            else:
                if res.first is None:
                    res.first = update.deployment
                res.last = update.deployment
    except grpc.aio.AioRpcError as err:
        res.error = f"{err.code().name}: {err.details()}"
    return res
