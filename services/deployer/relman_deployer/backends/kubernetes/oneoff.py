"""A release command on a real cluster: a ``batch/v1`` Job, followed to its end, then deleted.

:func:`run_job` writes the namespace and the release's Secret if missing, creates the Job
(:func:`.manifests.job_manifest`; one that exists already under the same name, left by a
Deployer that crashed, is followed instead), then watches, each in a thread of its own
(:class:`.watch.ResourceWatch`): the Job, its pods and the namespace's Events (those about
the Job and its pods are reported, in Kubernetes' words). Once the pod's container runs, its
log is followed (``pods/log`` with ``follow``) and every line is reported from the Job as an
``Output`` event. The Job's ``Complete`` or ``Failed`` condition ends the run (``Failed``
with reason ``DeadlineExceeded``: timed out); the exit code is the container's terminated
state's. Whatever happens (success, failure, a cancel closing the stream), the Job is deleted
at the end, its pods with it (foreground propagation).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from relman_common.clock import Clock
from relman_common.errors import FailedPrecondition

from relman_deployer.backends.base import (
    OUTPUT_REASON,
    BackendEvent,
    CommandOutcome,
    OutputTail,
    ReleaseJob,
    ReleaseOutput,
)
from relman_deployer.backends.kubernetes.apply import ensure_release_env
from relman_deployer.backends.kubernetes.errors import api_call, api_error, missing
from relman_deployer.backends.kubernetes.manifests import (
    CONTAINER,
    RELEASE_ANNOTATION,
    job_manifest,
    namespace_name,
)
from relman_deployer.backends.kubernetes.status import EventTracker
from relman_deployer.backends.kubernetes.watch import (
    Changed,
    Failed,
    Listed,
    ListFunctionFactory,
    ResourceWatch,
    StoppableStream,
    WatchReport,
)

log = logging.getLogger("relman.deployer.kubernetes")

Json = dict[str, Any]

JOB, POD, EVENT = "job", "pod", "event"
# How long, once the Job has ended, its pod's log may take to be read to its end, and the
# Job controller's Event saying so to arrive.
LOG_DRAIN_SECONDS = 10.0
EVENT_DRAIN_SECONDS = 3.0
# The reasons of the Job controller's Events about a Job's end.
JOB_ENDS = ("Completed", "BackoffLimitExceeded", "DeadlineExceeded")


@dataclass(frozen=True)
class LogLine:
    pod: str
    text: str


@dataclass(frozen=True)
class LogEnded:
    pod: str
    error: str = ""


Report = WatchReport | LogLine | LogEnded


class LogFollower:
    """``pods/log?follow=true`` of one pod's container, line by line, in a daemon thread."""

    def __init__(
        self,
        configuration: k8s.Configuration,
        namespace: str,
        pod: str,
        sink: Callable[[Report], None],
    ) -> None:
        self.pod = pod
        self._configuration = configuration
        self._namespace = namespace
        self._sink = sink
        self._stream = StoppableStream()
        self.thread = threading.Thread(target=self._run, name=f"relman-k8s-log-{pod}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stream.stop()

    def _run(self) -> None:
        api = k8s.ApiClient(self._configuration)
        error = ""
        try:
            response = k8s.CoreV1Api(api).read_namespaced_pod_log(
                self.pod,
                self._namespace,
                container=CONTAINER,
                follow=True,
                _preload_content=False,
                _request_timeout=(15.0, None),
            )
            if not self._stream.hold(response):
                return
            try:
                for line in _lines(response):
                    if self._stream.stopped:
                        break
                    self._sink(LogLine(self.pod, line))
            finally:
                self._stream.release()
                with contextlib.suppress(Exception):
                    response.release_conn()
        except ApiException as exc:
            error = str(api_error(exc, f"reading the log of pod {self.pod}"))
        except Exception as exc:
            if not self._stream.stopped:
                error = f"reading the log of pod {self.pod}: {exc!r}"
        finally:
            with contextlib.suppress(Exception):
                api.close()
            if not self._stream.stopped:
                self._sink(LogEnded(self.pod, error))


def _lines(response: Any) -> Iterator[str]:
    """The lines of a streamed response, the last one even without a line end."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


def start_job(api: k8s.ApiClient, namespace_prefix: str, job: ReleaseJob) -> str:
    """Blocking: the namespace, the Secret and the Job (or the same Job left from before);
    the namespace."""
    ns = ensure_release_env(api, namespace_prefix, job.spec)
    batch = k8s.BatchV1Api(api)
    with api_call(f"creating Job {ns}/{job.name}"):
        try:
            batch.create_namespaced_job(ns, job_manifest(job, ns))
            log.info("created Job %s/%s for release %s", ns, job.name, job.spec.release_id)
            return ns
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = batch.read_namespaced_job(job.name, ns)
    release = (existing.metadata.annotations or {}).get(RELEASE_ANNOTATION)
    if release != job.spec.release_id or existing.metadata.deletion_timestamp is not None:
        raise FailedPrecondition(
            f"Job {ns}/{job.name} exists for another run (release {release}); "
            "try again once it is gone"
        )
    log.info("following Job %s/%s left from an earlier run", ns, job.name)
    return ns


def delete_job(api: k8s.ApiClient, namespace: str, name: str) -> None:
    """Blocking: delete the Job and, through foreground propagation, its pods."""
    with api_call(f"deleting Job {namespace}/{name}"):
        try:
            k8s.BatchV1Api(api).delete_namespaced_job(
                name, namespace, propagation_policy="Foreground"
            )
        except ApiException as exc:
            if not missing(exc):
                raise
    log.info("deleted Job %s/%s", namespace, name)


def job_result(obj: Json | None) -> tuple[bool, bool] | None:
    """``(succeeded, timed out)`` once the Job has ended, else None.

    >>> job_result({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    (True, False)
    >>> job_result({"status": {"conditions": [
    ...     {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}})
    (False, True)
    >>> job_result({"status": {}}) is None
    True
    """
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, False
        if condition.get("type") == "Failed":
            return False, condition.get("reason") == "DeadlineExceeded"
    return None


def container_state(pod: Json) -> Json:
    """The state of the pod's main container (``{}`` before it has one)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return dict(status.get("state") or {})
    return {}


def exit_code(pods: dict[str, Json]) -> int | None:
    """The exit code of the newest pod whose container has terminated.

    >>> done = {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 3}}}]}
    >>> exit_code({"p": {"metadata": {"creationTimestamp": "2019"}, "status": done}})
    3
    """
    ordered = sorted(
        pods.values(), key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp"))
    )
    for pod in reversed(ordered):
        terminated = container_state(pod).get("terminated")
        if terminated is not None and terminated.get("exitCode") is not None:
            return int(terminated["exitCode"])
    return None


async def run_job(
    job: ReleaseJob,
    *,
    configuration: k8s.Configuration,
    namespace_prefix: str,
    executor: Executor,
    client: Callable[[], k8s.ApiClient],
    clock: Clock,
    watch_timeout: int,
) -> AsyncGenerator[ReleaseOutput, None]:
    """Run ``job`` as a Job and report what it does (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    namespace = namespace_name(namespace_prefix, job.app)
    inbox: asyncio.Queue[Report] = asyncio.Queue()

    def sink(report: Report) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(inbox.put_nowait, report)

    events = EventTracker(since=clock())
    watches = [
        ResourceWatch(kind, configuration, factory, sink, timeout_seconds=watch_timeout)
        for kind, factory in (
            (
                JOB,
                _list(
                    k8s.BatchV1Api, "list_namespaced_job", namespace, f"metadata.name={job.name}"
                ),
            ),
            (
                POD,
                _list(
                    k8s.CoreV1Api, "list_namespaced_pod", namespace, None, f"job-name={job.name}"
                ),
            ),
            (EVENT, _list(k8s.CoreV1Api, "list_namespaced_event", namespace)),
        )
    ]
    followers: dict[str, LogFollower] = {}
    ended_logs: set[str] = set()
    pods: dict[str, Json] = {}
    job_obj: Json | None = None
    tail = OutputTail()
    pending: list[Report] = []
    owned = False  # the Job is this run's to delete (created, or adopted)
    try:
        # Everything listed before the Job is created: its first Events are then new ones.
        for watch in watches:
            watch.start()
        listed: set[str] = set()
        while len(listed) < len(watches):
            report = await inbox.get()
            if isinstance(report, Listed):
                listed.add(report.kind)
            pending.append(report)
        await loop.run_in_executor(executor, lambda: start_job(client(), namespace_prefix, job))
        owned = True
        drain_until: float | None = None
        event_until = 0.0
        job_ended_event = False
        while True:
            result = job_result(job_obj)
            if result is not None and not pending:
                # Once the Job has ended (its watch may run ahead of the pods' and Events'):
                # the pod's exit seen and its log read to the end, then the Job controller's
                # own word on it (Completed, BackoffLimitExceeded, ...), each for a bounded time.
                if drain_until is None:
                    drain_until = loop.time() + LOG_DRAIN_SECONDS
                    event_until = loop.time() + EVENT_DRAIN_SECONDS
                succeeded, timed_out = result
                code = exit_code(pods)
                settled = (code is not None or timed_out) and not set(followers) - ended_logs
                waiting = max(event_until, loop.time()) if settled else drain_until
                if (settled and job_ended_event) or loop.time() >= waiting:
                    if succeeded and code is None:
                        code = 0  # Complete: every pod exited 0, whatever this one says
                    yield CommandOutcome(code, tail.lines(), timed_out=timed_out)
                    return
            if pending:
                report = pending.pop(0)
            elif result is not None:
                try:
                    report = await asyncio.wait_for(inbox.get(), waiting - loop.time())
                except TimeoutError:
                    continue
            else:
                report = await inbox.get()
            if isinstance(report, LogLine):
                yield BackendEvent(clock(), job.source, OUTPUT_REASON, tail.add(report.text))
            elif isinstance(report, LogEnded):
                ended_logs.add(report.pod)
                if report.error:
                    log.warning("release command %s: %s", job.name, report.error)
                    yield BackendEvent(clock(), job.source, OUTPUT_REASON, f"({report.error})")
            elif isinstance(report, Failed):
                raise report.error
            elif report.kind == EVENT:
                for event in _events(events, report, clock):
                    involved = event.source.removeprefix("system/k8s/")
                    if involved == job.name or involved.startswith(f"{job.name}-"):
                        job_ended_event |= involved == job.name and event.reason in JOB_ENDS
                        yield event
            elif report.kind == JOB:
                if isinstance(report, Listed):
                    job_obj = report.items[0] if report.items else None
                    gone = job_obj is None and report.relist  # the first list came before it
                    # Adopted after its end: the Event saying so is an old one, not awaited.
                    job_ended_event |= not report.relist and job_result(job_obj) is not None
                else:
                    gone = report.type == "DELETED"
                    if not gone:
                        job_obj = report.obj
                if gone and job_result(job_obj) is None:
                    raise FailedPrecondition(f"Job {namespace}/{job.name} was deleted while it ran")
            else:
                _take_pod(pods, report)
                for name, pod in pods.items():
                    state = container_state(pod)
                    if name not in followers and ("running" in state or "terminated" in state):
                        follower = LogFollower(configuration, namespace, name, sink)
                        followers[name] = follower
                        follower.start()
    finally:
        for watch in watches:
            watch.stop()
        for follower in followers.values():
            follower.stop()
        if owned:
            try:
                await asyncio.shield(
                    loop.run_in_executor(
                        executor, lambda: delete_job(client(), namespace, job.name)
                    )
                )
            except Exception as err:  # the run's end stands; the Job is left for a person
                log.warning("release command %s: could not delete its Job: %s", job.name, err)


def _events(tracker: EventTracker, report: WatchReport, clock: Clock) -> list[BackendEvent]:
    now = clock()
    if isinstance(report, Listed):
        if report.relist:
            return tracker.relisted(report.items, now)
        tracker.baseline(report.items)
        return []
    assert isinstance(report, Changed)
    event = tracker.changed(report.type, report.obj, now)
    return [event] if event is not None else []


def _take_pod(pods: dict[str, Json], report: WatchReport) -> None:
    if isinstance(report, Listed):
        pods.clear()
        pods.update({str((p.get("metadata") or {}).get("name")): p for p in report.items})
    elif isinstance(report, Changed):
        name = str((report.obj.get("metadata") or {}).get("name"))
        if report.type == "DELETED":
            return  # keep its last state: the exit code is read from it
        pods[name] = report.obj


def _list(
    api_class: Any,
    method: str,
    namespace: str,
    field_selector: str | None = None,
    label_selector: str | None = None,
) -> ListFunctionFactory:
    selectors = {
        k: v
        for k, v in (("field_selector", field_selector), ("label_selector", label_selector))
        if v is not None
    }

    def factory(api: k8s.ApiClient) -> Callable[..., Any]:
        return functools.partial(getattr(api_class(api), method), namespace, **selectors)

    return factory
