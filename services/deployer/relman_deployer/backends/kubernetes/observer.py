"""An observer of one app on a real cluster: watches of its namespace, Deployments, pods and
Events (each in a thread: the official client is synchronous), fed to the event loop with
``call_soon_threadsafe``. It yields a :class:`RolloutStatus` once everything is listed, then
every Event that happens from then on (``system/k8s/<involvedObject.name>``, the Event's reason
and message, in Kubernetes' own words) and a new snapshot whenever the status changes (counts,
restarts, or the conditions in which the Deployment controller gives its progress verdict).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from relman_common.clock import Clock
from relman_common.errors import RelmanError

from relman_deployer.backends.base import Observation, RolloutStatus
from relman_deployer.backends.kubernetes.status import EventTracker, rollout_status
from relman_deployer.backends.kubernetes.watch import (
    Changed,
    Failed,
    Listed,
    ListFunctionFactory,
    ResourceWatch,
    WatchReport,
)

Json = dict[str, Any]

NAMESPACE, DEPLOYMENT, POD, EVENT = "namespace", "deployment", "pod", "event"
STATUS_KINDS = (NAMESPACE, DEPLOYMENT, POD)
# How long close() waits for watch threads to notice they are stopped.
JOIN_SECONDS = 5.0

_END: Any = object()


class KubernetesObserver:
    """One observer of one app: its own watches and its own stream of observations.

    An async iterator with ``aclose()`` (so ``contextlib.aclosing`` works). Closing it, or the
    backend closing, stops its watch threads; dropping it unclosed stops them too.
    """

    def __init__(
        self,
        configuration: k8s.Configuration,
        namespace: str,
        *,
        clock: Clock,
        watch_timeout: int,
        on_close: Callable[[KubernetesObserver], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.namespace = namespace
        self._clock = clock
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._out: deque[Observation] = deque()
        self._namespace_obj: Json | None = None
        self._deployments: dict[str, Json] = {}
        self._pods: dict[str, Json] = {}
        self._events = EventTracker(since=clock())
        self._listed: set[str] = set()
        self._last_status: RolloutStatus | None = None
        self._error: RelmanError | None = None
        self._closed = False
        self._on_close = on_close
        sink = _sink(loop, self._inbox)
        self.watches = [
            ResourceWatch(kind, configuration, factory, sink, timeout_seconds=watch_timeout)
            for kind, factory in (
                (NAMESPACE, _namespace_list(namespace)),
                (
                    DEPLOYMENT,
                    _namespaced_list(k8s.AppsV1Api, "list_namespaced_deployment", namespace),
                ),
                (POD, _namespaced_list(k8s.CoreV1Api, "list_namespaced_pod", namespace)),
                (EVENT, _namespaced_list(k8s.CoreV1Api, "list_namespaced_event", namespace)),
            )
        ]
        # Threads hold the sink (loop + inbox), never this object: an observer dropped without
        # being closed is collected, and the finalizer stops its threads.
        self._finalizer = weakref.finalize(self, _stop_all, list(self.watches))
        for watch in self.watches:
            watch.start()

    def __aiter__(self) -> KubernetesObserver:
        return self

    async def __anext__(self) -> Observation:
        while not self._out:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            report = await self._inbox.get()
            if report is _END:
                continue
            self._take(report)
        return self._out.popleft()

    async def aclose(self) -> None:
        """Stop the watches; what was not read yet is dropped and iteration ends."""
        self.stop()
        self._out.clear()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        self._inbox.put_nowait(_END)
        if self._on_close is not None:
            self._on_close(self)

    def threads_alive(self) -> int:
        return sum(1 for w in self.watches if w.thread.is_alive())

    def join(self, timeout: float = JOIN_SECONDS) -> bool:
        """Blocking: wait until every watch thread has ended (call from a thread)."""
        return all(w.join(timeout) for w in self.watches)

    # -- on the event loop: reports from the watch threads ----------------------------------

    def _take(self, report: WatchReport) -> None:
        now = self._clock()
        if isinstance(report, Failed):
            self._error = report.error
            self.stop()
            return
        if isinstance(report, Listed):
            self._take_list(report, now)
        elif report.kind == EVENT:
            event = self._events.changed(report.type, report.obj, now)
            if event is not None:
                self._out.append(event)
        else:
            self._take_change(report)
        if report.kind in STATUS_KINDS or isinstance(report, Listed):
            self._publish_status()

    def _take_list(self, report: Listed, now: datetime) -> None:
        self._listed.add(report.kind)
        if report.kind == EVENT:
            if report.relist:
                self._out.extend(self._events.relisted(report.items, now))
            else:
                self._events.baseline(report.items)
        elif report.kind == NAMESPACE:
            named = [i for i in report.items if _name(i) == self.namespace]
            self._namespace_obj = named[0] if named else None
        elif report.kind == DEPLOYMENT:
            self._deployments = {_name(i): i for i in report.items}
        elif report.kind == POD:
            self._pods = {_name(i): i for i in report.items}

    def _take_change(self, report: Changed) -> None:
        name = _name(report.obj)
        gone = report.type == "DELETED"
        if report.kind == NAMESPACE:
            if name == self.namespace:
                self._namespace_obj = None if gone else report.obj
            return
        cache = self._deployments if report.kind == DEPLOYMENT else self._pods
        if gone:
            cache.pop(name, None)
        else:
            cache[name] = report.obj

    def _publish_status(self) -> None:
        """Once everything is listed: the first snapshot goes first, later ones on change."""
        if not self._listed.issuperset((*STATUS_KINDS, EVENT)):
            return
        status = rollout_status(self._namespace_obj, self._deployments, self._pods.values())
        if status == self._last_status:
            return
        if self._last_status is None:
            self._out.appendleft(status)
        else:
            self._out.append(status)
        self._last_status = status


def _name(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _sink(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> Callable[[Any], None]:
    def sink(report: WatchReport) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(inbox.put_nowait, report)

    return sink


def _stop_all(watches: list[ResourceWatch]) -> None:
    for watch in watches:
        watch.stop()


def _namespace_list(namespace: str) -> ListFunctionFactory:
    def factory(api: k8s.ApiClient) -> Callable[..., Any]:
        return functools.partial(
            k8s.CoreV1Api(api).list_namespace, field_selector=f"metadata.name={namespace}"
        )

    return factory


def _namespaced_list(api_class: Any, method: str, namespace: str) -> ListFunctionFactory:
    """``api_class(api).<method>`` bound to ``namespace`` (e.g. CoreV1Api.list_namespaced_pod)."""

    def factory(api: k8s.ApiClient) -> Callable[..., Any]:
        return functools.partial(getattr(api_class(api), method), namespace)

    return factory
