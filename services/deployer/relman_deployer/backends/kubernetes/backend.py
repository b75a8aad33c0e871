""":class:`KubernetesBackend`: the :class:`relman_deployer.backends.base.Backend` interface
over a real cluster. It owns the client configuration, a small executor for the blocking API
calls of :meth:`KubernetesBackend.apply` (never run on the loop), and its observers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from relman_common.clock import Clock, utcnow
from relman_common.errors import InvalidArgument, Unavailable

from relman_deployer.backends.base import AppSpec, ReleaseJob, ReleaseOutput
from relman_deployer.backends.kubernetes.apply import apply_spec
from relman_deployer.backends.kubernetes.dryrun import plan_spec
from relman_deployer.backends.kubernetes.errors import api_error, connection_error
from relman_deployer.backends.kubernetes.manifests import (
    namespace_name,
    validate_prefix,
    validate_spec,
)
from relman_deployer.backends.kubernetes.observer import JOIN_SECONDS, KubernetesObserver
from relman_deployer.backends.kubernetes.oneoff import run_job
from relman_deployer.domain.plan import ObjectPlan

log = logging.getLogger("relman.deployer.kubernetes")

# How long one request for a pod's logs may take.
LOG_REQUEST_SECONDS = 5.0


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

    async def plan(self, spec: AppSpec) -> tuple[ObjectPlan, ...]:
        """What :meth:`apply` of ``spec`` would change: the live objects against the server's
        answers to a dry-run apply of each (nothing is written)."""
        if self._closed:
            raise Unavailable("the kubernetes backend is closed")
        validate_spec(spec)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._plan, spec)

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

    async def run_release_command(self, job: ReleaseJob) -> AsyncGenerator[ReleaseOutput, None]:
        """A ``batch/v1`` Job in the app's namespace (:mod:`.oneoff`), deleted at the end."""
        if self._closed:
            raise Unavailable("the kubernetes backend is closed")
        validate_spec(job.spec)
        async with contextlib.aclosing(
            run_job(
                job,
                configuration=self._configuration,
                namespace_prefix=self.namespace_prefix,
                executor=self._executor,
                client=self._client,
                clock=self._clock,
                watch_timeout=self.watch_timeout_seconds,
            )
        ) as items:
            async for item in items:
                yield item

    async def pod_logs(self, app: str, pod: str, container: str, lines: int) -> list[str]:
        """The last ``lines`` lines of ``container`` in ``pod``: of its previous run when it
        restarted (what a crash loop left), else of the current one."""
        if self._closed:
            raise Unavailable("the kubernetes backend is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            self._pod_logs,
            namespace_name(self.namespace_prefix, app),
            pod,
            container,
            lines,
        )

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
        apply_spec(self._client(), self.namespace_prefix, spec)

    def _plan(self, spec: AppSpec) -> tuple[ObjectPlan, ...]:
        return plan_spec(self._client(), self.namespace_prefix, spec)

    def _pod_logs(self, namespace: str, pod: str, container: str, lines: int) -> list[str]:
        core = k8s.CoreV1Api(self._client())
        what = f"reading the logs of pod {pod}"
        for previous in (True, False):
            try:
                text = core.read_namespaced_pod_log(
                    pod,
                    namespace,
                    container=container or None,
                    tail_lines=lines,
                    previous=previous,
                    _request_timeout=LOG_REQUEST_SECONDS,
                )
            except ApiException as exc:
                if previous and exc.status == 400:  # no previous run: the current one
                    continue
                raise api_error(exc, what) from None
            except OSError as exc:
                raise connection_error(exc, what) from None
            return str(text or "").splitlines()[-lines:]
        return []
