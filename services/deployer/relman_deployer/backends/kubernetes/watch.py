"""List-then-watch of one kind of object, in a thread of its own (the client library is sync).

A :class:`ResourceWatch` lists the objects (getting a resourceVersion), reports the list, then
watches from that version and reports every change. When the server says the version is too
old (410 Gone, as a status or as an ``ERROR`` watch event) it lists again and reports the new
list; on connection errors it reconnects from the last version it saw, backing off. Each watch
request ends after ``timeout_seconds`` on the server side and is re-opened, so a stop flag is
looked at at least that often; :meth:`ResourceWatch.stop` also shuts the socket of the request
in flight, so a stop takes effect at once.

Every report goes to ``sink`` (which must be thread-safe: the backend hands it to the event
loop with ``call_soon_threadsafe``). The thread owns its own ``ApiClient`` (one connection).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines
from relman_common.errors import PermissionDenied, RelmanError, Unauthenticated

from relman_deployer.backends.kubernetes.errors import api_error

log = logging.getLogger("relman.deployer.kubernetes")

Json = dict[str, Any]
# Given the thread's ApiClient, the list function of one kind (e.g. a bound
# ``CoreV1Api.list_namespaced_pod`` with its namespace); it is called with the list or watch
# keyword arguments.
ListFunctionFactory = Callable[[k8s.ApiClient], Callable[..., Any]]

MIN_BACKOFF = 0.2
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Listed:
    """All objects of ``kind`` now; ``relist`` when this replaces an earlier list."""

    kind: str
    items: list[Json]
    relist: bool


@dataclass(frozen=True)
class Changed:
    """One watch event: ``type`` is ADDED, MODIFIED or DELETED."""

    kind: str
    type: str
    obj: Json


@dataclass(frozen=True)
class Failed:
    """The watch gave up for good (credentials refused): ``error`` says why."""

    kind: str
    error: RelmanError


WatchReport = Listed | Changed | Failed


class StoppableStream:
    """A stop flag, and the streamed response a daemon thread is blocked reading: :meth:`stop`
    (from any thread) sets the flag and shuts that response's socket down."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; whether it was stopped."""
        return self._stop.wait(seconds)

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            response = self._response
        if response is not None:
            _abort(response)

    def hold(self, response: Any) -> bool:
        """``response`` is the one :meth:`stop` aborts, until :meth:`release`; False (and it
        is aborted now) when stop came first."""
        with self._lock:
            stopping = self._stop.is_set()
            self._response = None if stopping else response
        if stopping:
            _abort(response)
        return not stopping

    def release(self) -> None:
        with self._lock:
            self._response = None


class ResourceWatch:
    """One kind of object, listed and watched in a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        kind: str,
        configuration: k8s.Configuration,
        list_function: ListFunctionFactory,
        sink: Callable[[WatchReport], None],
        *,
        timeout_seconds: int = 30,
        request_timeout: float = 15.0,
    ) -> None:
        self.kind = kind
        self._configuration = configuration
        self._list_function = list_function
        self._sink = sink
        self._timeout_seconds = timeout_seconds
        self._request_timeout = request_timeout
        self._stream = StoppableStream()
        self.thread = threading.Thread(
            target=self._run, name=f"relman-k8s-watch-{kind}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the thread to end and interrupt the request it is blocked in."""
        self._stream.stop()

    @property
    def stopped(self) -> bool:
        return self._stream.stopped

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self.thread.ident is not None:
            self.thread.join(timeout)
        return not self.thread.is_alive()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        api = k8s.ApiClient(self._configuration)
        try:
            self._loop(self._list_function(api))
        except Exception:  # never let a watch thread die silently
            log.exception("watch of %s failed", self.kind)
        finally:
            with contextlib.suppress(Exception):
                api.close()

    def _loop(self, list_fn: Callable[..., Any]) -> None:
        version: str | None = None
        listed_before = False
        backoff = MIN_BACKOFF
        while not self._stream.stopped:
            try:
                if version is None:
                    items, version = self._list(list_fn)
                    if self._stream.stopped:
                        return
                    self._sink(Listed(self.kind, items, relist=listed_before))
                    listed_before = True
                version = self._watch(list_fn, version)
                backoff = MIN_BACKOFF
            except ApiException as exc:
                if self._stream.stopped:
                    return
                if exc.status == 410:
                    log.info("watch of %s expired (410 Gone); listing again", self.kind)
                    version = None
                    continue
                error = api_error(exc, f"watching {self.kind}s")
                if isinstance(error, Unauthenticated | PermissionDenied):
                    self._sink(Failed(self.kind, error))
                    return
                log.warning("watch of %s: %s; retrying in %.1fs", self.kind, error, backoff)
                self._stream.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as exc:
                if self._stream.stopped:
                    return
                log.warning("watch of %s: %r; reconnecting in %.1fs", self.kind, exc, backoff)
                self._stream.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list(self, list_fn: Callable[..., Any]) -> tuple[list[Json], str]:
        response = list_fn(_preload_content=False, _request_timeout=self._request_timeout)
        try:
            data = json.loads(response.data)
        finally:
            with contextlib.suppress(Exception):
                response.release_conn()
        items = [item for item in data.get("items") or [] if isinstance(item, dict)]
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, list_fn: Callable[..., Any], version: str) -> str:
        """One watch request from ``version``; returns the last version seen."""
        response = list_fn(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout_seconds,
            _preload_content=False,
            _request_timeout=(self._request_timeout, self._timeout_seconds + self._request_timeout),
        )
        if not self._stream.hold(response):
            return version
        try:
            for line in iter_resp_lines(response):
                if self._stream.stopped:
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise ApiException(status=code, reason=obj.get("message") or "watch error")
                new_version = (obj.get("metadata") or {}).get("resourceVersion")
                if new_version:
                    version = str(new_version)
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._sink(Changed(self.kind, kind, obj))
        finally:
            self._stream.release()
            # The stream may have been left unread (ERROR event, stop): close the connection
            # rather than hand a half-read one back to the pool.
            with contextlib.suppress(Exception):
                response.close()
            with contextlib.suppress(Exception):
                response.release_conn()
        return version


def _abort(response: Any) -> None:
    """Unblock a thread reading ``response`` by shutting its socket down."""
    with contextlib.suppress(Exception):
        connection = response.connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()
