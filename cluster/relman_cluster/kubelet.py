"""A kubelet emulator (in the spirit of kwok) for a control plane without real nodes.

It registers Ready nodes, watches pods bound to them and plays the kubelet's part:
kubelet-style Events in the pod's namespace and pod status updates.

Image conventions (the tag is the part after the last ':'):

* tag contains ``crash``   -> the container crash-loops (restartCount grows, waiting
  CrashLoopBackOff, repeated ``BackOff`` events, pod never Ready);
* tag contains ``unready`` -> the container runs but never becomes Ready (repeated
  ``Unhealthy`` events);
* anything else            -> Running and Ready after ``pod_delay`` seconds.

Pods with ``restartPolicy: Never`` (a Job's) run to completion instead: each container
"prints" ``[kubelet emulator] running <command and args>``, and ``pod_delay`` seconds later
exits 1 after ``[kubelet emulator] <command> failed: RELMAN_SIM_FAIL=release`` when its env
(``env`` values and ``envFrom`` Secrets, read as the kubelet reads them) holds
``RELMAN_SIM_FAIL=release``, else exits 0 after ``[kubelet emulator] <command> done``; the pod
ends ``Succeeded`` or ``Failed`` with the containers' terminated states. Nothing is executed,
except that a container whose command is ``sleep N`` runs N seconds (so a Job can outlive its
``activeDeadlineSeconds``).
What containers print is served as the kubelet serves logs (:mod:`.kubelet_logs`, on the
nodes' ``InternalIP`` 127.0.0.1 and ``kubeletEndpoint`` port), so ``pods/log`` works.

Failures a real node produces, decided as :mod:`relman_cluster.conditions` writes down (no
container runs): an image reference that does not parse -> ``InvalidImageName``; an image the
registry does not hold (loopback registries are asked; elsewhere a tag containing
``unpullable``) -> ``ErrImagePull``, then ``ImagePullBackOff``, pulled again after a back-off;
a missing Secret or ConfigMap the container's env needs -> ``CreateContainerConfigError``; a
command that ends (``exit N``, ``false``, ``true``) -> restarts into ``CrashLoopBackOff``; a
``RELMAN_KUBELET_MEMORY_USAGE`` above the memory limit -> ``OOMKilled``, then a crash loop.
Events carry the kubelet's words (``Failed``, ``BackOff``, ``InspectFailed``).

Pods being deleted get a ``Killing`` event and are then force-deleted (grace period 0).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import heapq
import itertools
import json
import logging
import os
import shlex
import socket
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from relman_cluster.conditions import (
    OOM_EXIT_CODE,
    command_exit,
    memory_exceeded,
    pull_error,
    valid_reference,
)
from relman_cluster.kubelet_logs import KubeletLogServer, LogStore
from relman_cluster.logserver import LOG_ENV

log = logging.getLogger("relman_cluster.kubelet")

KUBELET_VERSION = "v1.20.2"
# The env of a run-to-completion container that makes it exit 1 (as the sim's release command).
FAIL_ENV, FAIL_RELEASE = "RELMAN_SIM_FAIL", "release"
Json = dict[str, Any]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String() (e.g. 1.2s, 201.5ms)."""
    if seconds >= 1:
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    ms = seconds * 1000
    return f"{ms:.6f}".rstrip("0").rstrip(".") + "ms"


def image_tag(image: str) -> str:
    """The tag of an image reference: text after the last ':' unless that is part of a path."""
    ref = image.split("@", 1)[0]
    if ":" not in ref:
        return "latest"
    tag = ref.rsplit(":", 1)[1]
    return "latest" if "/" in tag else tag


def container_behaviour(image: str) -> str:
    tag = image_tag(image).lower()
    if "crash" in tag:
        return "crash"
    if "unready" in tag:
        return "unready"
    return "ok"


@dataclass(order=True)
class _Task:
    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    key: str | None = field(compare=False, default=None)
    attempts: int = field(compare=False, default=0)


@dataclass
class _PodState:
    uid: str
    namespace: str
    name: str
    node: str
    pod_ip: str
    containers: list[Json]
    init_containers: list[Json]
    started_at: str = ""
    container_ids: dict[str, str] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    # Containers that do not run, by name: (waiting reason, message).
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Containers whose process ends, by name: (exit code, termination reason).
    exits: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Containers whose image could not be pulled last time.
    unpulled: list[Json] = field(default_factory=list)
    killing: bool = False
    # Each container's environment, once resolved (what the memory rule reads).
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    generation: int = 0  # bumped to cancel scheduled work for this pod
    restart_policy: str = "Always"
    exit_codes: dict[str, int] = field(default_factory=dict)  # containers that have ended
    finished_at: str = ""


class KubeletEmulator:
    """Emulates ``nodes`` kubelets against the cluster described by ``kubeconfig``."""

    MAX_TASK_RETRIES = 10

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        *,
        nodes: int = 1,
        node_prefix: str = "relman-node-",
        pod_delay: float = 0.2,
        crash_interval: float = 1.0,
        unready_interval: float = 1.0,
        heartbeat_interval: float = 20.0,
        watch_timeout: int = 30,
        node_capacity: Json | None = None,
        serve_logs: bool = True,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.node_names = [f"{node_prefix}{i}" for i in range(nodes)]
        self.pod_delay = pod_delay
        self.crash_interval = crash_interval
        self.unready_interval = unready_interval
        self.heartbeat_interval = heartbeat_interval
        self.watch_timeout = watch_timeout
        self.capacity: Json = node_capacity or {
            "cpu": "32",
            "memory": "128Gi",
            "pods": "250",
            "ephemeral-storage": "200Gi",
        }
        self._api_client = k8s_config.new_client_from_config(config_file=self.kubeconfig)
        self._watch_client = k8s_config.new_client_from_config(config_file=self.kubeconfig)
        self._core = k8s.CoreV1Api(self._api_client)
        self._watch_core = k8s.CoreV1Api(self._watch_client)
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._tasks: list[_Task] = []
        self._seq = itertools.count()
        self._pods: dict[str, _PodState] = {}
        self._ip_counters: dict[str, itertools.count[int]] = {}
        self._event_cache: dict[tuple[str, str, str, str, str], tuple[str, int]] = {}
        self._threads: list[threading.Thread] = []
        self._watch_resp: Any = None
        self._boot_time = _now()
        self.ready = threading.Event()
        self.errors = 0
        # What containers print, served as the kubelet serves logs (kube-apiserver proxies
        # ``pods/log`` to it): Jobs' output as they run, else what a container's env says.
        self.logs = LogStore()
        self._logs = KubeletLogServer(self.logs, self._log_source) if serve_logs else None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> None:
        """Register nodes and start the watch & worker threads."""
        deadline = time.monotonic() + timeout
        if self._logs is not None:
            self._logs.start()
        while True:
            try:
                for i, name in enumerate(self.node_names):
                    self._register_node(i, name)
                break
            except (ApiException, OSError) as exc:
                if time.monotonic() >= deadline:
                    if self._logs is not None:
                        self._logs.stop()
                    raise RuntimeError(f"kubelet emulator: cannot register nodes: {exc}") from exc
                time.sleep(0.2)
        for target, name in ((self._worker_loop, "worker"), (self._watch_loop, "watch")):
            t = threading.Thread(target=target, name=f"relman-kubelet-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self._schedule(self.heartbeat_interval, self._heartbeat)
        if not self.ready.wait(max(0.0, deadline - time.monotonic())):
            self.stop()
            raise RuntimeError("kubelet emulator: initial pod list did not complete in time")

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop.set()
            self._lock.notify_all()
            resp = self._watch_resp
        if resp is not None:
            self._abort_response(resp)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._logs is not None:
            self._logs.stop()
        for c in (self._api_client, self._watch_client):
            with contextlib.suppress(Exception):
                c.close()

    @staticmethod
    def _abort_response(resp: Any) -> None:
        """Unblock a thread reading a watch response by shutting its socket down."""
        with contextlib.suppress(Exception):
            conn = resp.connection
            sock = conn.sock if conn is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            resp.close()

    def __enter__(self) -> KubeletEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ nodes
    @property
    def kubelet_port(self) -> int:
        return self._logs.port if self._logs is not None else 10250

    def _node_ip(self, index: int) -> str:
        """Loopback when this emulator serves the kubelet's endpoint there (every node: the
        port tells them apart from nothing else, and the paths name the pod)."""
        return "127.0.0.1" if self._logs is not None else f"10.240.0.{index + 10}"

    def _log_source(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> tuple[int, str]:
        """A container's log as the kubelet answers for it (see :mod:`.logserver`)."""
        with self._lock:
            state = next(
                (s for s in self._pods.values() if (s.namespace, s.name) == (namespace, pod)),
                None,
            )
        if state is None:
            return 404, f'pods "{pod}" not found\n'
        if container not in {c["name"] for c in state.containers}:
            return 400, f"container {container} is not valid for pod {pod}\n"
        waiting = state.waiting.get(container)
        if waiting is not None:
            return 400, (
                f'container "{container}" in pod "{pod}" is waiting to start: {waiting[0]}\n'
            )
        if previous and not state.restarts.get(container):
            return 400, f'previous terminated container "{container}" in pod "{pod}" not found\n'
        return 200, state.env.get(container, {}).get(LOG_ENV, "")

    def _node_status(self, index: int, name: str) -> Json:
        now = _now()

        def cond(ctype: str, status: str, reason: str, message: str) -> Json:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._boot_time,
            }

        return {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.capacity),
            "conditions": [
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self._node_ip(index)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": hashlib.md5(name.encode()).hexdigest(),
                "systemUUID": hashlib.md5(name.encode()).hexdigest(),
                "bootID": hashlib.md5(self._boot_time.encode()).hexdigest(),
                "kernelVersion": os.uname().release,
                "osImage": "relman kubelet emulator",
                "containerRuntimeVersion": "containerd://1.4.13",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self, index: int, name: str) -> None:
        body: Json = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "relman.dev/emulated": "true",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
            "status": self._node_status(index, name),
        }
        try:
            self._core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Status is ignored on create by some versions; always set it explicitly.
        self._core.patch_node_status(name, {"status": self._node_status(index, name)})
        self._ip_counters.setdefault(name, itertools.count(2))
        log.info("registered node %s", name)

    def _heartbeat(self) -> None:
        if self._stop.is_set():
            return
        for i, name in enumerate(self.node_names):
            try:
                self._core.patch_node_status(name, {"status": self._node_status(i, name)})
            except ApiException as exc:
                if exc.status == 404:
                    with contextlib.suppress(ApiException):
                        self._register_node(i, name)
                else:
                    log.warning("node heartbeat %s failed: %s", name, exc.reason)
            except Exception as exc:
                log.warning("node heartbeat %s failed: %r", name, exc)
        self._schedule(self.heartbeat_interval, self._heartbeat)

    def _next_ip(self, node: str) -> str:
        idx = self.node_names.index(node)
        n = next(self._ip_counters.setdefault(node, itertools.count(2)))
        return f"10.244.{idx}.{2 + (n - 2) % 250}"

    # ------------------------------------------------------------------ scheduling
    def _schedule(self, delay: float, fn: Callable[[], None], key: str | None = None) -> None:
        with self._lock:
            heapq.heappush(self._tasks, _Task(time.monotonic() + delay, next(self._seq), fn, key))
            self._lock.notify_all()

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._tasks:
                    self._lock.wait(timeout=1.0)
                    continue
                wait = self._tasks[0].due - time.monotonic()
                if wait > 0:
                    self._lock.wait(timeout=min(wait, 1.0))
                    continue
                task = heapq.heappop(self._tasks)
            try:
                task.fn()
            except Exception as exc:
                self.errors += 1
                transient = not isinstance(exc, ApiException) or exc.status in (429, 500, 503)
                if transient and task.attempts < self.MAX_TASK_RETRIES:
                    log.warning("kubelet emulator task failed (%r); retrying", exc)
                    retry = _Task(
                        time.monotonic() + 0.5 * (task.attempts + 1),
                        next(self._seq),
                        task.fn,
                        task.key,
                        task.attempts + 1,
                    )
                    with self._lock:
                        heapq.heappush(self._tasks, retry)
                else:
                    log.exception("kubelet emulator task failed")

    # ------------------------------------------------------------------ watch
    def _field_selector(self) -> str:
        if len(self.node_names) == 1:
            return f"spec.nodeName={self.node_names[0]}"
        return "spec.nodeName!="

    def _watch_loop(self) -> None:
        rv: str | None = None
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                    self.ready.set()
                rv = self._watch_once(rv)
                backoff = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    log.info("pod watch expired (410); relisting")
                    rv = None
                    continue
                if self._stop.is_set():
                    return
                log.warning("pod watch error %s %s; retrying", exc.status, exc.reason)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("pod watch connection error %r; retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                rv = None if backoff >= 5.0 else rv

    def _relist(self) -> str:
        resp = self._watch_core.list_pod_for_all_namespaces(
            field_selector=self._field_selector(), _preload_content=False, _request_timeout=30
        )
        data = json.loads(resp.data)
        seen: set[str] = set()
        for pod in data.get("items", []):
            seen.add(pod["metadata"]["uid"])
            self._on_pod("ADDED", pod)
        for uid in list(self._pods):
            if uid not in seen:
                self._forget(uid)
        return str(data["metadata"]["resourceVersion"])

    def _watch_once(self, rv: str) -> str:
        resp = self._watch_core.list_pod_for_all_namespaces(
            field_selector=self._field_selector(),
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _preload_content=False,
            _request_timeout=(10, self.watch_timeout + 15),
        )
        with self._lock:
            # stop() reads _watch_resp under the same lock: either it sees this response and
            # aborts it, or we see the stop flag here.
            stopping = self._stop.is_set()
            self._watch_resp = None if stopping else resp
        if stopping:
            self._abort_response(resp)
            return rv
        try:
            for line in self._lines(resp):
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                ev = json.loads(line)
                etype = ev.get("type")
                obj = ev.get("object") or {}
                if etype == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise ApiException(status=code, reason=obj.get("message", "watch error"))
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                if etype in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_pod(etype, obj)
        finally:
            with self._lock:
                self._watch_resp = None
            with contextlib.suppress(Exception):
                resp.release_conn()
        return rv

    @staticmethod
    def _lines(resp: Any) -> Iterator[str]:
        for line in iter_resp_lines(resp):
            yield line if isinstance(line, str) else line.decode("utf-8")

    # ------------------------------------------------------------------ pod logic
    def _on_pod(self, etype: str, pod: Json) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        uid = meta.get("uid", "")
        node = spec.get("nodeName") or ""
        if node not in self.node_names:
            return
        with self._lock:
            state = self._pods.get(uid)
        if etype == "DELETED":
            self._forget(uid)
            return
        if meta.get("deletionTimestamp"):
            victim = state if state is not None else self._track(pod)
            if not victim.killing:
                victim.killing = True
                victim.generation += 1
                kgen = victim.generation
                self._schedule(0.0, lambda: self._kill(victim, kgen))
            return
        if state is not None:
            return
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        state = self._track(pod)
        gen = state.generation
        if phase == "Running" and status.get("containerStatuses"):
            # Adopted after a restart of the emulator: keep the failure loops going.
            state.started_at = status.get("startTime") or _now()
            self._schedule(self.pod_delay, lambda: self._after_start(state, gen))
            return
        self._schedule(0.0, lambda: self._begin(state, gen))

    def _track(self, pod: Json) -> _PodState:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec["nodeName"]
        state = _PodState(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            node=node,
            pod_ip=status.get("podIP") or self._next_ip(node),
            containers=list(spec.get("containers") or []),
            init_containers=list(spec.get("initContainers") or []),
            restart_policy=str(spec.get("restartPolicy") or "Always"),
        )
        with self._lock:
            self._pods[state.uid] = state
        return state

    def _forget(self, uid: str) -> None:
        with self._lock:
            state = self._pods.pop(uid, None)
            if state is not None:
                state.generation += 1
            for key in [k for k in self._event_cache if k[1] == uid]:
                del self._event_cache[key]
        if state is not None:
            self.logs.forget(state.namespace, state.name)

    def _current(self, state: _PodState, gen: int) -> bool:
        with self._lock:
            return (
                not self._stop.is_set()
                and self._pods.get(state.uid) is state
                and state.generation == gen
            )

    def _begin(self, state: _PodState, gen: int) -> None:
        if not self._current(state, gen):
            return
        invalid = False
        for c in state.containers:
            image = c.get("image", "")
            if not valid_reference(image):
                invalid = True
                message = (
                    f'Failed to apply default image tag "{image}": couldn\'t parse image '
                    f'reference "{image}": invalid reference format'
                )
                self._event(state, c, "Warning", "InspectFailed", message)
                self._event(state, c, "Warning", "Failed", "Error: InvalidImageName")
                state.waiting[c["name"]] = ("InvalidImageName", message)
        if invalid:  # the kubelet's next sync of the pod finds it no better
            self._patch_status(state, gen)
            self._schedule(self.crash_interval, lambda: self._begin(state, gen))
            return
        self._pull(state, gen, state.containers)

    def _pull(self, state: _PodState, gen: int, containers: list[Json]) -> None:
        for c in containers:
            self._event(state, c, "Normal", "Pulling", f'Pulling image "{c.get("image", "")}"')
        t0 = time.monotonic()
        self._schedule(self.pod_delay, lambda: self._pulled(state, gen, t0))

    def _pulled(self, state: _PodState, gen: int, t0: float) -> None:
        if not self._current(state, gen):
            return
        state.unpulled = []
        for c in state.containers:
            image = c.get("image", "")
            error = pull_error(image)
            if error is None:
                continue
            state.unpulled.append(c)
            self._event(state, c, "Warning", "Failed", f'Failed to pull image "{image}": {error}')
            self._event(state, c, "Warning", "Failed", "Error: ErrImagePull")
            state.waiting[c["name"]] = ("ErrImagePull", error)
        if state.unpulled:
            self._patch_status(state, gen)
            self._schedule(self.crash_interval, lambda: self._pull_back_off(state, gen))
            return
        missing = self._config_error(state)
        if missing:
            for c in state.containers:
                self._event(
                    state,
                    c,
                    "Normal",
                    "Pulled",
                    f'Container image "{c.get("image", "")}" already present on machine',
                )
                self._event(state, c, "Warning", "Failed", f"Error: {missing}")
                state.waiting[c["name"]] = ("CreateContainerConfigError", missing)
            self._patch_status(state, gen)
            # Started once the Secret or ConfigMap exists, as the kubelet retries.
            self._schedule(self.crash_interval, lambda: self._pulled(state, gen, time.monotonic()))
            return
        state.waiting.clear()
        for c in state.containers:  # known before the first status: such a pod is never ready
            exit_ = self._exit_of(state, c)
            if exit_ is not None:
                state.exits[c["name"]] = exit_
        took = go_duration(max(time.monotonic() - t0, 0.001))
        for c in state.containers:
            image = c.get("image", "")
            self._event(
                state, c, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took}'
            )
            self._event(state, c, "Normal", "Created", f"Created container {c['name']}")
            self._event(state, c, "Normal", "Started", f"Started container {c['name']}")
            state.container_ids[c["name"]] = self._container_id(state, c["name"], 0)
            state.restarts[c["name"]] = 0
        state.started_at = _now()
        if state.restart_policy == "Never":
            for c in state.containers:
                self.logs.write(
                    (state.namespace, state.name, c["name"]),
                    [f"[kubelet emulator] running {_command(c)}"],
                )
        self._patch_status(state, gen)
        self._schedule(self.pod_delay, lambda: self._after_start(state, gen))

    def _pull_back_off(self, state: _PodState, gen: int) -> None:
        """After a failed pull: ``ImagePullBackOff`` until the back-off ends, then pull again
        (an image pushed meanwhile is then pulled and the pod starts)."""
        if not self._current(state, gen):
            return
        for c in state.unpulled:
            message = f'Back-off pulling image "{c.get("image", "")}"'
            self._event(state, c, "Normal", "BackOff", message)
            self._event(state, c, "Warning", "Failed", "Error: ImagePullBackOff")
            state.waiting[c["name"]] = ("ImagePullBackOff", message)
        self._patch_status(state, gen)
        unpulled = list(state.unpulled)
        self._schedule(2 * self.crash_interval, lambda: self._retry_pull(state, gen, unpulled))

    def _retry_pull(self, state: _PodState, gen: int, containers: list[Json]) -> None:
        if self._current(state, gen):
            self._pull(state, gen, containers)

    def _config_error(self, state: _PodState) -> str:
        """The kubelet's error for the first Secret or ConfigMap a container's env needs and
        the API does not have ("" when all exist); each container's env is kept."""
        for c in state.containers:
            env, missing = self._container_env(state.namespace, c)
            if missing:
                return missing
            state.env[c["name"]] = env
        return ""

    def _container_env(self, namespace: str, c: Json) -> tuple[dict[str, str], str]:
        env: dict[str, str] = {}
        cache: dict[tuple[str, str], dict[str, str] | None] = {}

        def data(kind: str, name: str) -> dict[str, str] | None:
            if (kind, name) not in cache:
                try:
                    if kind == "secret":
                        obj = self._core.read_namespaced_secret(name, namespace)
                        raw = obj.data or {}
                        cache[kind, name] = {
                            k: b64decode(v).decode("utf-8", "replace") for k, v in raw.items()
                        }
                    else:
                        obj = self._core.read_namespaced_config_map(name, namespace)
                        cache[kind, name] = dict(obj.data or {})
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    cache[kind, name] = None
            return cache[kind, name]

        for source in c.get("envFrom") or []:
            for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
                ref = source.get(key)
                if not ref:
                    continue
                found = data(kind, ref.get("name", ""))
                if found is None:
                    if ref.get("optional"):
                        continue
                    return env, f'{kind} "{ref.get("name", "")}" not found'
                prefix = source.get("prefix") or ""
                env.update({prefix + k: v for k, v in found.items()})
        for var in c.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var.get("value") or "")
                continue
            source = var.get("valueFrom") or {}
            for kind, key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
                ref = source.get(key)
                if not ref:
                    continue
                found = data(kind, ref.get("name", ""))
                if found is None or ref.get("key") not in found:
                    if ref.get("optional"):
                        continue
                    if found is None:
                        return env, f'{kind} "{ref.get("name", "")}" not found'
                    where = f"{namespace}/{ref.get('name', '')}"
                    return env, f"couldn't find key {ref.get('key')} in {kind} {where}"
                env[var["name"]] = found[ref["key"]]
        return env, ""

    def _exit_of(self, state: _PodState, c: Json) -> tuple[int, str] | None:
        """How the container's process ends (exit code, reason), or None if it keeps on."""
        if container_behaviour(c.get("image", "")) == "crash":
            return 1, "Error"
        if memory_exceeded(c, state.env.get(c["name"], {})):
            return OOM_EXIT_CODE, "OOMKilled"
        code = command_exit(c)
        if code is not None:
            return code, "Error" if code else "Completed"
        return None

    def _after_start(self, state: _PodState, gen: int) -> None:
        """Schedule the failure loops for crashing / unready containers."""
        if not self._current(state, gen):
            return
        if state.restart_policy == "Never":
            # ``sleep N`` runs N seconds from its start (this call comes pod_delay after it).
            longer = max((_sleep_seconds(c) for c in state.containers), default=0.0)
            self._schedule(max(longer - self.pod_delay, 0.0), lambda: self._complete(state, gen))
            return
        if not state.env and any(c.get("env") or c.get("envFrom") for c in state.containers):
            self._config_error(state)  # adopted after a restart of the emulator
        for c in state.containers:
            exit_ = state.exits.get(c["name"]) or self._exit_of(state, c)
            if exit_ is not None:
                state.exits[c["name"]] = exit_
                self._crash(state, gen, c)
            elif container_behaviour(c.get("image", "")) == "unready":
                self._unready(state, gen, c)

    def _complete(self, state: _PodState, gen: int) -> None:
        """A run-to-completion pod's containers exit (see the module's docstring)."""
        if not self._current(state, gen):
            return
        for c in state.containers:
            env = state.env.get(c["name"]) or self._container_env(state.namespace, c)[0]
            failing = env.get(FAIL_ENV) == FAIL_RELEASE
            command = _command(c)
            last = f"{command} failed: {FAIL_ENV}={FAIL_RELEASE}" if failing else f"{command} done"
            self.logs.write(
                (state.namespace, state.name, c["name"]), [f"[kubelet emulator] {last}"], end=True
            )
            state.exit_codes[c["name"]] = 1 if failing else 0
        state.finished_at = _now()
        self._patch_status(state, gen)

    def _crash(self, state: _PodState, gen: int, c: Json) -> None:
        if not self._current(state, gen):
            return
        name = c["name"]
        state.restarts[name] = state.restarts.get(name, 0) + 1
        state.container_ids[name] = self._container_id(state, name, state.restarts[name])
        self._patch_status(state, gen)
        self._event(state, c, "Warning", "BackOff", "Back-off restarting failed container")
        self._schedule(self.crash_interval, lambda: self._crash(state, gen, c))

    def _unready(self, state: _PodState, gen: int, c: Json) -> None:
        if not self._current(state, gen):
            return
        self._event(
            state,
            c,
            "Warning",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
        )
        self._schedule(self.unready_interval, lambda: self._unready(state, gen, c))

    def _kill(self, state: _PodState, gen: int) -> None:
        if not self._current(state, gen):
            return
        for c in state.containers:
            if c["name"] in state.exit_codes:
                continue  # it has ended: nothing to stop
            self._event(state, c, "Normal", "Killing", f"Stopping container {c['name']}")
        try:
            self._core.delete_namespaced_pod(
                state.name,
                state.namespace,
                body=k8s.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=state.uid)
                ),
                grace_period_seconds=0,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise  # the worker retries this task (Killing is then counted up, as kubelet)
        self._forget_later(state)

    def _forget_later(self, state: _PodState) -> None:
        self._schedule(5.0, lambda: self._forget_if_same(state))

    def _forget_if_same(self, state: _PodState) -> None:
        with self._lock:
            current = self._pods.get(state.uid)
        if current is state and state.killing:
            self._forget(state.uid)

    # ------------------------------------------------------------------ status & events
    @staticmethod
    def _container_id(state: _PodState, name: str, restart: int) -> str:
        digest = hashlib.sha256(f"{state.uid}/{name}/{restart}".encode()).hexdigest()
        return f"containerd://{digest}"

    def _container_status(self, state: _PodState, c: Json, now: str) -> tuple[Json, bool]:
        name = c["name"]
        image = c.get("image", "")
        kind = container_behaviour(image)
        restarts = state.restarts.get(name, 0)
        image_id = f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        cs: Json = {
            "name": name,
            "image": image,
            "imageID": image_id,
            "containerID": state.container_ids.get(name, self._container_id(state, name, 0)),
            "restartCount": restarts,
            "lastState": {},
        }
        ready = False
        exit_ = state.exits.get(name)
        if name in state.exit_codes:
            code = state.exit_codes[name]
            cs["state"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": state.started_at or now,
                    "finishedAt": state.finished_at or now,
                    "containerID": cs["containerID"],
                }
            }
            cs["started"] = False
        elif name in state.waiting:
            reason, message = state.waiting[name]
            cs["state"] = {"waiting": {"reason": reason, "message": message}}
            cs["started"] = False
            cs.pop("containerID", None)
            cs["imageID"] = ""
        elif exit_ is not None and restarts > 0:
            code, why = exit_
            cs["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 10s restarting failed container={name} "
                    f"pod={state.name}_{state.namespace}({state.uid})",
                }
            }
            cs["lastState"] = {
                "terminated": {
                    "exitCode": code,
                    "reason": why,
                    "startedAt": state.started_at or now,
                    "finishedAt": now,
                    "containerID": self._container_id(state, name, restarts - 1),
                }
            }
            cs["started"] = False
        else:
            cs["state"] = {"running": {"startedAt": state.started_at or now}}
            cs["started"] = True
            ready = kind == "ok" and exit_ is None
        cs["ready"] = ready
        return cs, ready

    def _patch_status(self, state: _PodState, gen: int) -> None:
        now = _now()
        statuses: list[Json] = []
        not_ready: list[str] = []
        for c in state.containers:
            cs, ready = self._container_status(state, c, now)
            statuses.append(cs)
            if not ready:
                not_ready.append(c["name"])
        all_ready = not not_ready
        ended = bool(state.containers) and len(state.exit_codes) == len(state.containers)
        phase = "Running"
        if ended:
            phase = "Succeeded" if not any(state.exit_codes.values()) else "Failed"

        def cond(ctype: str, ok: bool) -> Json:
            d: Json = {
                "type": ctype,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
            if not ok and ended:
                d["reason"] = "PodCompleted"
            elif not ok:
                d["reason"] = "ContainersNotReady"
                d["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
            return d

        node_ip = self._node_ip(self.node_names.index(state.node))
        # Pending until a container has started (a pod waiting for its image or its config).
        started = any(c["name"] not in state.waiting for c in state.containers)
        status: Json = {
            "phase": phase if ended or started else "Pending",
            "hostIP": node_ip,
            "podIP": state.pod_ip,
            "podIPs": [{"ip": state.pod_ip}],
            "startTime": state.started_at or now,
            "conditions": [
                cond("Initialized", True),
                cond("Ready", all_ready),
                cond("ContainersReady", all_ready),
            ],
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }
        if state.init_containers:
            status["initContainerStatuses"] = [
                {
                    "name": ic["name"],
                    "image": ic.get("image", ""),
                    "imageID": "",
                    "containerID": self._container_id(state, ic["name"], 0),
                    "ready": True,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": state.started_at or now,
                            "finishedAt": state.started_at or now,
                        }
                    },
                    "lastState": {},
                }
                for ic in state.init_containers
            ]
        if not self._current(state, gen):
            return
        try:
            self._core.patch_namespaced_pod_status(
                state.name, state.namespace, {"metadata": {"uid": state.uid}, "status": status}
            )
        except ApiException as exc:
            if exc.status in (404, 409, 422):
                return
            raise

    def _event(
        self, state: _PodState, c: Json | None, etype: str, reason: str, message: str
    ) -> None:
        field_path = f"spec.containers{{{c['name']}}}" if c is not None else ""
        key = (state.namespace, state.uid, reason, message, field_path)
        now = _now()
        with self._lock:
            cached = self._event_cache.get(key)
        if cached is not None:
            ev_name, count = cached
            try:
                self._core.patch_namespaced_event(
                    ev_name, state.namespace, {"count": count + 1, "lastTimestamp": now}
                )
                with self._lock:
                    self._event_cache[key] = (ev_name, count + 1)
                return
            except ApiException as exc:
                if exc.status != 404:
                    log.debug("event patch failed: %s", exc.reason)
                    return
        ev_name = f"{state.name}.{time.time_ns():x}"
        body: Json = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": ev_name, "namespace": state.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": state.namespace,
                "name": state.name,
                "uid": state.uid,
                **({"fieldPath": field_path} if field_path else {}),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": "kubelet", "host": state.node},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": state.node,
        }
        try:
            self._core.create_namespaced_event(state.namespace, body)
            with self._lock:
                self._event_cache[key] = (ev_name, 1)
        except ApiException as exc:
            # e.g. 403 while the namespace is terminating: the kubelet drops such events too.
            log.debug(
                "event %s for %s/%s dropped: %s", reason, state.namespace, state.name, exc.reason
            )


def _sleep_seconds(c: Json) -> float:
    """N when a container runs ``sleep N`` (the one command the emulator runs for real, so a
    Job can outlive its deadline), else 0.

    >>> _sleep_seconds({"args": ["sleep", "30"]}), _sleep_seconds({"args": ["bin/migrate"]})
    (30.0, 0.0)
    """
    words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
    if len(words) == 2 and words[0] == "sleep":
        with contextlib.suppress(ValueError):
            return max(float(words[1]), 0.0)
    return 0.0


def _command(c: Json) -> str:
    """What a container runs, as a shell would take it: its command and args (the image's
    entrypoint when it names neither)."""
    words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
    return shlex.join(words) if words else "(the image's entrypoint)"
