"""Starting and stopping a relman gRPC service: health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from relman_common.auth import Authenticator
from relman_common.grpc_errors import RpcInterceptor
from relman_common.tls import ServerTls
from relman_common.vocabulary import MESSAGE_SIZE_OPTIONS

log = logging.getLogger("relman.server")

SHUTDOWN_GRACE_SECONDS = 10.0


def setup_logging(service: str, level: int = logging.INFO) -> None:
    """One line per record on stderr: time, service, logger, message.

    The format names no caller, thread or process, so records do not collect them (the
    logging HOWTO's "Optimization"): a service writes a line for every request.
    """
    logging._srcfile = None  # type: ignore[attr-defined]  # the documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s {service} %(name)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


# glibc's mallopt parameter, and the size from which every allocation is its own mapping.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def keep_large_buffers_mapped() -> bool:
    """Fix glibc's mmap threshold at 128 KiB (its default start), so that every large
    buffer (an upload's 1 MiB chunks, a layer being read) is mapped on its own and returned
    to the system when freed. Left dynamic, glibc raises the threshold after the first large
    free, large buffers then come from per-thread heaps, and the resident size of a process
    that streams through several threads grows with fragmentation (measured through one
    500 MB upload: +22 to +77 MiB, against +20 to +45 MiB fixed). False where there is no
    glibc.
    """
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: libc's, no library search
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def run_service(
    make: Callable[[], Service], log: logging.Logger, expected: tuple[type[Exception], ...]
) -> int:
    """A program's exit status: 0 once the service ``make()`` builds has run until a signal
    stopped it; 1, logged to ``log``, when building or running it fails with one of
    ``expected`` (an address in use, a key that cannot be read)."""
    try:
        asyncio.run(make().run_until_signal())
    except expected as err:
        log.error("%s", err)
        return 1
    return 0


def server_options() -> list[tuple[str, int]]:
    return [
        *MESSAGE_SIZE_OPTIONS,
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


class Service:
    """A running gRPC server with health and reflection.

    ``gil_switch_seconds``: how often the process's threads take turns with the GIL when it
    runs as a program (None: Python's default, 5 ms). A service whose database threads must
    commit promptly while its event loop is busy sets a shorter one (each statement releases
    the GIL, and getting it back waited up to the whole interval each time).

    ``register`` adds the service's servicers; ``service_names`` are their full names (for
    health and reflection). ``on_start`` runs once the server serves (background work),
    ``on_stop`` after the server stopped taking calls.
    ``authenticate`` verifies the bearer token of every call but health and reflection (None:
    authentication off); ``tls`` serves TLS (mutual TLS when it names a client CA).
    """

    gil_switch_seconds: float | None = None

    def __init__(
        self,
        addr: str,
        register: Callable[[grpc.aio.Server], None],
        service_names: Sequence[str],
        on_stop: Callable[[], Awaitable[None]] | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        tls: ServerTls | None = None,
        authenticate: Authenticator | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.addr = addr
        self._register = register
        self._names = list(service_names)
        self._on_start = on_start
        self._on_stop = on_stop
        self._interceptors = [*interceptors, RpcInterceptor(authenticate)]
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._tls = tls
        self.authenticated = authenticate is not None

    async def start(self) -> None:
        if "," in self.addr:  # RELMAN_RELEASE_ADDR may list replicas for clients
            raise OSError(
                f"cannot listen on {self.addr!r}: a service listens on one HOST:PORT "
                "(a list of addresses is for clients); give it --addr"
            )
        server = grpc.aio.server(interceptors=self._interceptors, options=server_options())
        self._register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [
                *self._names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        if self._tls is None:
            self.port = server.add_insecure_port(self.addr)
        else:
            self.port = server.add_secure_port(self.addr, self._tls.credentials())
        if self.port == 0:
            raise OSError(f"could not listen on {self.addr}")
        await server.start()
        self.server = server
        if self._on_start is not None:
            try:
                await self._on_start()
            except BaseException:
                self.server = None
                await server.stop(0)
                raise
        for name in ["", *self._names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = self.addr.rsplit(":", 1)[0]
        mode = "mutual TLS" if self._tls and self._tls.client_ca else "TLS" if self._tls else ""
        log.info(
            "listening on %s:%d%s%s",
            host,
            self.port,
            f" ({mode})" if mode else "",
            ", authentication on" if self.authenticated else "",
        )

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        if self.server is None:
            return
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.server = None
        if self._on_stop is not None:
            await self._on_stop()
        log.info("stopped")

    async def run_until_signal(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully (in this process's GIL
        switch interval ``gil_switch_seconds``, if the service sets one)."""
        if self.gil_switch_seconds is not None:
            sys.setswitchinterval(self.gil_switch_seconds)
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert self.server is not None
        waiter = asyncio.ensure_future(self.server.wait_for_termination())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        await self.stop()
        for task in (waiter, stopper):
            task.cancel()
