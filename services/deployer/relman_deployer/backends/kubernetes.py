"""The ``kubernetes`` backend: a real cluster through a kubeconfig or in-cluster config.

Per app a namespace ``<prefix>-<app>`` (labelled ``app.kubernetes.io/managed-by=relman``); per
release an immutable Secret ``env-<release id>`` with the env; per service a Deployment whose
pod template takes its env from that Secret (``envFrom``) and carries the release id as an
annotation, so every release gets a ReplicaSet of its own and applying an earlier release again
scales that release's old ReplicaSet back up with exactly its config. Everything is written with
server-side apply (field manager ``relman``), which leaves alone the fields others own.
The manifests are built in :mod:`.kubernetes_manifests`, the observations read in
:mod:`.kubernetes_status`; this module only talks to the API server.

:meth:`KubernetesBackend.apply` writes, in this order: the namespace (if missing), the Secret,
each Deployment, the deletion of Deployments of services no longer in the spec, and last the
namespace's annotations naming the release and its services. Observers read that annotation as
"the current release", so a snapshot never claims a release is complete while some of its
Deployments still have to be written.

:meth:`KubernetesBackend.observe` lists and watches the app's namespace, Deployments, pods and
Events, each in a thread (the official client is synchronous), feeding the event loop with
``call_soon_threadsafe``. It yields a :class:`RolloutStatus` once everything is listed, then
every Event that happens from then on (``system/k8s/<involvedObject.name>``, the Event's reason
and message, in Kubernetes' own words) and a new snapshot whenever the status changes (counts,
restarts, or the conditions in which the Deployment controller gives its progress verdict).
Blocking API calls of :meth:`apply` run on a small executor of the backend's own, never on the
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from relman_common.clock import Clock, utcnow
from relman_common.errors import FailedPrecondition, InvalidArgument, RelmanError, Unavailable

from relman_deployer.backends.base import AppSpec, Observation, RolloutStatus
from relman_deployer.backends.kubernetes_errors import api_error, connection_error
from relman_deployer.backends.kubernetes_manifests import (
    APP_LABEL,
    FIELD_MANAGER,
    MANAGED_BY,
    decode_env,
    deployment_manifest,
    labels,
    namespace_manifest,
    namespace_name,
    referenced_secrets,
    secret_manifest,
    secret_name,
    validate_prefix,
    validate_spec,
)
from relman_deployer.backends.kubernetes_status import EventTracker, rollout_status
from relman_deployer.backends.kubernetes_watch import (
    Changed,
    Failed,
    Listed,
    ListFunctionFactory,
    ResourceWatch,
    WatchReport,
)

log = logging.getLogger("relman.deployer.kubernetes")

Json = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"
NAMESPACE, DEPLOYMENT, POD, EVENT = "namespace", "deployment", "pod", "event"
STATUS_KINDS = (NAMESPACE, DEPLOYMENT, POD)
# How long close() waits for watch threads to notice they are stopped.
JOIN_SECONDS = 5.0


def load_configuration(kubeconfig: str | None, context: str | None) -> k8s.Configuration:
    """The client configuration: ``kubeconfig`` (or ``$KUBECONFIG``, ``~/.kube/config``), or the
    pod's service account when neither a kubeconfig nor a context is named, ``$KUBECONFIG`` is
    unset and ``$KUBERNETES_SERVICE_HOST`` is set (running inside a cluster)."""
    configuration = k8s.Configuration()
    in_cluster = (
        kubeconfig is None
        and context is None
        and not os.environ.get("KUBECONFIG")
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as err:
        source = "in-cluster service account" if in_cluster else (kubeconfig or "kubeconfig")
        raise InvalidArgument(f"cannot load Kubernetes configuration from {source}: {err}") from err
    return configuration


@contextlib.contextmanager
def _api(what: str) -> Iterator[None]:
    """Turn client failures while doing ``what`` into the project's errors."""
    try:
        yield
    except ApiException as exc:
        raise api_error(exc, what) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise connection_error(exc, what) from exc


def _missing(exc: ApiException) -> bool:
    return bool(exc.status == 404)


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


class KubernetesBackend:
    """A real cluster implementing :class:`relman_deployer.backends.base.Backend`."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace_prefix: str = "relman",
        watch_timeout_seconds: int = 30,
        api_threads: int = 4,
        clock: Clock = utcnow,
    ) -> None:
        """``watch_timeout_seconds`` is how long one watch request lasts before it is renewed
        (also the longest a stopped watch thread may take to notice, had its socket not been
        shut); ``api_threads`` bounds concurrent blocking API calls of :meth:`apply`."""
        validate_prefix(namespace_prefix)
        if watch_timeout_seconds <= 0:
            raise InvalidArgument("watch_timeout_seconds must be positive")
        self.namespace_prefix = namespace_prefix
        self.watch_timeout_seconds = watch_timeout_seconds
        self._configuration = load_configuration(kubeconfig, context)
        self._clock = clock
        self._executor = ThreadPoolExecutor(api_threads, thread_name_prefix="relman-k8s-api")
        self._local = threading.local()
        self._clients: list[k8s.ApiClient] = []
        self._clients_lock = threading.Lock()
        self._observers: weakref.WeakSet[KubernetesObserver] = weakref.WeakSet()
        self._stopped: list[KubernetesObserver] = []
        self._closed = False

    # -- the Backend interface ---------------------------------------------------------------

    async def apply(self, spec: AppSpec) -> None:
        """Make ``spec`` the desired state of its app; returns once the API server has it."""
        if self._closed:
            raise Unavailable("the kubernetes backend is closed")
        validate_spec(spec)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._apply, spec)

    def observe(self, app: str) -> KubernetesObserver:
        """Start watching ``app`` now (before :meth:`apply`, to miss nothing).

        The first item is a status snapshot, yielded once the namespace, Deployments, pods and
        Events have all been listed: every Event after that is reported.
        """
        observer = KubernetesObserver(
            self._configuration,
            namespace_name(self.namespace_prefix, app),
            clock=self._clock,
            watch_timeout=self.watch_timeout_seconds,
            on_close=self._forget,
        )
        self._observers.add(observer)
        if self._closed:
            observer.stop()
        return observer

    async def close(self) -> None:
        """Stop every observer and its threads, then the API connections. Not usable again."""
        self._closed = True
        observers = list(self._observers)
        for observer in observers:
            observer.stop()
        stopped, self._stopped = [*self._stopped, *observers], []

        def finish() -> None:
            for observer in stopped:
                if not observer.join(JOIN_SECONDS):
                    log.warning("watch threads of %s did not end in time", observer.namespace)
            with self._clients_lock:
                clients, self._clients = self._clients, []
            for api in clients:
                with contextlib.suppress(Exception):
                    api.close()

        await asyncio.get_running_loop().run_in_executor(None, finish)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- inspection (tests, debugging) ------------------------------------------------------

    def observer_count(self) -> int:
        return len(self._observers)

    # -- apply, on the executor ------------------------------------------------------------

    def _forget(self, observer: KubernetesObserver) -> None:
        self._observers.discard(observer)
        # Kept (bounded: pruned of finished ones) so close() can wait for their threads.
        self._stopped = [o for o in (*self._stopped, observer) if o.threads_alive()]

    def _client(self) -> k8s.ApiClient:
        """This executor thread's ApiClient (the client's connection pool is per client)."""
        api: k8s.ApiClient | None = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = k8s.ApiClient(self._configuration)
            with self._clients_lock:
                self._clients.append(api)
        return api

    def _apply(self, spec: AppSpec) -> None:
        api = self._client()
        core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        ns = namespace_name(self.namespace_prefix, spec.app)
        self._ensure_namespace(core, ns, spec.app)
        if spec.services:
            self._ensure_secret(core, ns, spec)
        for service in spec.services:
            body = deployment_manifest(spec, service, ns)
            with _api(f"applying Deployment {ns}/{service.name}"):
                server_side_apply(
                    api, f"/apis/apps/v1/namespaces/{ns}/deployments/{service.name}", body
                )
        self._delete_other_deployments(apps, ns, spec)
        with _api(f"annotating namespace {ns}"):
            server_side_apply(
                api, f"/api/v1/namespaces/{ns}", namespace_manifest(ns, spec.app, spec)
            )
        self._prune_secrets(core, apps, ns, spec)
        log.info("applied release %s of %s to namespace %s", spec.release_id, spec.app, ns)

    def _ensure_namespace(self, core: k8s.CoreV1Api, ns: str, app: str) -> None:
        with _api(f"creating namespace {ns}"):
            try:
                existing = core.read_namespace(ns)
            except ApiException as exc:
                if not _missing(exc):
                    raise
                try:
                    core.create_namespace(namespace_manifest(ns, app))
                except ApiException as create_exc:
                    if create_exc.status != 409:
                        raise
                return
        if existing.metadata.deletion_timestamp is not None:
            raise Unavailable(f"namespace {ns} is being deleted; try again when it is gone")

    def _ensure_secret(self, core: k8s.CoreV1Api, ns: str, spec: AppSpec) -> None:
        """Create the release's immutable Secret, or check the one there holds the same env."""
        name = secret_name(spec.release_id)
        with _api(f"creating Secret {ns}/{name}"):
            try:
                core.create_namespaced_secret(ns, secret_manifest(spec, ns))
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
            existing = core.read_namespaced_secret(name, ns)
        if decode_env(existing.data) != dict(spec.env):
            raise FailedPrecondition(
                f"Secret {ns}/{name} exists with another environment than release "
                f"{spec.release_id}; releases are immutable"
            )

    def _delete_other_deployments(self, apps: k8s.AppsV1Api, ns: str, spec: AppSpec) -> None:
        wanted = {s.name for s in spec.services}
        selector = f"{MANAGED_BY}={FIELD_MANAGER},{APP_LABEL}={spec.app}"
        with _api(f"listing Deployments in {ns}"):
            existing = apps.list_namespaced_deployment(ns, label_selector=selector).items
        for dep in existing:
            name = dep.metadata.name
            if name in wanted or dep.metadata.deletion_timestamp is not None:
                continue
            with _api(f"deleting Deployment {ns}/{name}"):
                try:
                    apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
                except ApiException as exc:
                    if not _missing(exc):
                        raise
            log.info("deleted Deployment %s/%s (not in release %s)", ns, name, spec.release_id)

    def _prune_secrets(
        self, core: k8s.CoreV1Api, apps: k8s.AppsV1Api, ns: str, spec: AppSpec
    ) -> None:
        """Delete env Secrets no Deployment or ReplicaSet refers to any more.

        ReplicaSets kept for rollback (revisionHistoryLimit) keep their Secret; a rollback to
        a release whose ReplicaSet is gone writes its Secret again.
        """
        selector = ",".join(f"{k}={v}" for k, v in labels(spec.app).items())
        with _api(f"listing Secrets in {ns}"):
            secrets = core.list_namespaced_secret(ns, label_selector=selector).items
            owners = _items(apps.list_namespaced_deployment(ns, _preload_content=False))
            owners += _items(apps.list_namespaced_replica_set(ns, _preload_content=False))
        keep = referenced_secrets([(o.get("spec") or {}).get("template") or {} for o in owners])
        if spec.services:
            keep.add(secret_name(spec.release_id))
        for secret in secrets:
            name = secret.metadata.name
            if name in keep:
                continue
            with _api(f"deleting Secret {ns}/{name}"):
                try:
                    core.delete_namespaced_secret(name, ns)
                except ApiException as exc:
                    if not _missing(exc):
                        raise


def server_side_apply(api: k8s.ApiClient, path: str, body: Json) -> None:
    """``PATCH`` ``body`` to ``path`` as server-side apply (field manager ``relman``, forced).

    The generated client's patch methods always send a JSON/strategic-merge patch content
    type, so the request is made through ``call_api`` with the apply content type (JSON is
    YAML, so the body is sent as JSON).
    """
    response = api.call_api(
        path,
        "PATCH",
        query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        header_params={"Content-Type": APPLY_PATCH, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    _ = response.data  # read it all, so the connection can be reused
    response.release_conn()


def _items(response: Any) -> list[Json]:
    """The items of a list response read with ``_preload_content=False`` (plain API JSON)."""
    try:
        data = json.loads(response.data)
    finally:
        response.release_conn()
    return [item for item in data.get("items") or [] if isinstance(item, dict)]
