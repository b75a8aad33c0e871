"""The ``kubernetes`` backend's pure parts: manifests, status and event translation, and the
watch loop's list / 410 Gone / reconnect logic (no cluster needed).

The watch loop runs against a scripted list function: a real API server cannot be made to
answer 410 Gone or drop a connection on demand (its etcd compaction and watch-cache window are
not ours to set), so these paths are driven by a script; the real server is used by
tests/e2e/kubernetes/test_kubernetes_backend.py.
"""

from __future__ import annotations

import doctest
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from relman_common.errors import InvalidArgument, Unauthenticated
from relman_common.manifest import EnvSpec, Port, Scale, Service
from relman_deployer.backends.base import AppSpec, RolloutStatus, ServiceStatus
from relman_deployer.backends.kubernetes import errors as kubernetes_errors
from relman_deployer.backends.kubernetes import manifests as kubernetes_manifests
from relman_deployer.backends.kubernetes import status as kubernetes_status
from relman_deployer.backends.kubernetes.manifests import (
    RELEASE_ANNOTATION,
    deployment_manifest,
    namespace_manifest,
    rolling_update,
    validate_prefix,
    validate_spec,
)
from relman_deployer.backends.kubernetes.status import EventTracker, rollout_status
from relman_deployer.backends.kubernetes.watch import (
    Changed,
    Failed,
    Listed,
    ResourceWatch,
    WatchReport,
)
from support.helpers import wait_for

T0 = datetime(2019, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("module", [kubernetes_manifests, kubernetes_status, kubernetes_errors])
def test_doc_examples_hold(module: Any) -> None:
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


# -- manifests ---------------------------------------------------------------------------------


def spec(*services: Service, env: dict[str, str] | None = None, deadline: int = 600) -> AppSpec:
    return AppSpec("myapp", "RBCDEFGHIJK", "BBCDEFGHIJK", env or {}, services, deadline)


@pytest.mark.parametrize(
    ("minimum", "maximum", "expected"),
    [
        (50, 200, {"maxSurge": "100%", "maxUnavailable": "50%"}),
        (75, 125, {"maxSurge": "25%", "maxUnavailable": "25%"}),
        (100, 150, {"maxSurge": "50%", "maxUnavailable": "0%"}),
        (0, 100, {"maxSurge": "0%", "maxUnavailable": "100%"}),
        (100, 100, {"maxSurge": "0%", "maxUnavailable": 1}),  # what the API server accepts
    ],
)
def test_rolling_update_is_the_manifest_percentages(
    minimum: int, maximum: int, expected: dict[str, object]
) -> None:
    service = Service("web", "img", minimum=minimum, maximum=maximum)
    assert rolling_update(service) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (AppSpec("My_App", "R1", "B1"), "invalid app name"),
        (spec(Service("web_1", "img")), "invalid service name"),
        (spec(Service("web", "img"), Service("web", "img")), "duplicate service"),
        (spec(Service("web", "")), "invalid image"),
        (spec(Service("web", "registry/app:web 1")), "invalid image"),
        (spec(Service("web", "img", scale=Scale(-1, -1))), "replicas must not be negative"),
        (spec(Service("web", "img", minimum=-1)), "maxUnavailable"),
        (spec(Service("web", "img"), env={"1BAD": "x"}), "invalid env key"),
        (spec(Service("web", "img"), deadline=0), "invalid progress deadline"),
        (AppSpec("myapp", "", "", {}, (Service("web", "img"),)), "release id is required"),
        (AppSpec("myapp", "R1", "", {}, (Service("web", "img"),)), "invalid release id"),
    ],
)
def test_specs_the_cluster_would_reject_are_refused_up_front(bad: AppSpec, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_spec(bad)


def test_a_spec_without_services_is_valid_and_names_no_release() -> None:
    empty = AppSpec("myapp", "", "")
    validate_spec(empty)
    annotations = namespace_manifest("relman-myapp", "myapp", empty)["metadata"]["annotations"]
    assert annotations == {RELEASE_ANNOTATION: "", "relman.io/services": "{}"}


def test_namespace_prefix_must_make_valid_namespace_names() -> None:
    validate_prefix("relman")
    for bad in ("", "Relman", "-x", "x" * 40):
        with pytest.raises(InvalidArgument, match="namespace prefix"):
            validate_prefix(bad)


def test_a_service_without_port_gets_no_probe_and_no_args_without_command() -> None:
    worker = Service("worker", "img")
    dep = deployment_manifest(spec(worker, deadline=60), worker, "ns")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert set(container) == {"name", "image", "envFrom"}
    assert dep["spec"]["progressDeadlineSeconds"] == 60
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "worker",
        "relman.io/app": "myapp",
    }


def test_an_http_port_probes_without_a_scheme_and_env_defaults_yield_to_the_release() -> None:
    web = Service(
        "web",
        "img",
        port=Port(5000),
        environment=(EnvSpec("A", "default-a"), EnvSpec("B", "default-b"), EnvSpec("C")),
    )
    dep = deployment_manifest(spec(web, env={"A": "from-release"}), web, "ns")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": 5000}
    assert container["ports"] == [{"name": "main", "containerPort": 5000, "protocol": "TCP"}]
    assert container["env"] == [{"name": "B", "value": "default-b"}]
    assert "resources" not in container


# -- status ------------------------------------------------------------------------------------


def namespace(release: str, services: dict[str, int]) -> dict[str, Any]:
    """The app's namespace as apply() leaves it for ``release``."""
    desired = tuple(
        Service(name, "img", scale=Scale(replicas, replicas)) for name, replicas in services.items()
    )
    return namespace_manifest("relman-myapp", "myapp", AppSpec("myapp", release, "B", {}, desired))


def deployment(
    release: str,
    *,
    replicas: int = 2,
    generation: int = 2,
    observed: int = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation, "annotations": {RELEASE_ANNOTATION: release}},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def pod(service: str, release: str, restarts: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{service}-{release}-{restarts}",
            "labels": {"app.kubernetes.io/name": service},
            "annotations": {RELEASE_ANNOTATION: release},
        },
        "status": {"containerStatuses": [{"restartCount": restarts}]},
    }


def test_status_is_complete_once_the_controller_has_seen_the_release_and_counts_match() -> None:
    status = rollout_status(namespace("R2", {"web": 2}), {"web": deployment("R2")}, [])
    assert status == RolloutStatus("R2", (ServiceStatus("web", 2, 2, 2, 2),))
    assert status.complete


def test_status_is_not_complete_before_the_controller_observed_the_new_generation() -> None:
    # Counts of the old template look complete, but the controller has not caught up yet.
    stale = deployment("R2", generation=3, observed=2)
    status = rollout_status(namespace("R2", {"web": 2}), {"web": stale}, [])
    assert status.services[0].updated == 0 and not status.complete


def test_status_of_a_service_whose_deployment_is_missing_or_older_counts_nothing_updated() -> None:
    ns = namespace("R2", {"web": 3, "worker": 1})
    status = rollout_status(ns, {"web": deployment("R1", replicas=2)}, [])
    assert status.services == (
        ServiceStatus("web", 3, 0, 2, 2),
        ServiceStatus("worker", 1, 0, 0, 0),
    )
    assert not status.complete


def test_restarts_come_from_the_current_release_pods_of_the_service_only() -> None:
    pods = [pod("web", "R2", 4), pod("web", "R1", 9), pod("worker", "R2", 7), pod("web", "R2", 1)]
    status = rollout_status(namespace("R2", {"web": 2}), {"web": deployment("R2")}, pods)
    assert status.services[0].restarts == 4


TIMED_OUT = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "web-6d4cf56db6" has timed out progressing.',
    "lastUpdateTime": "2019-01-01T00:10:51Z",
    "lastTransitionTime": "2019-01-01T00:10:51Z",
}
UNAVAILABLE = {
    "type": "Available",
    "status": "False",
    "reason": "MinimumReplicasUnavailable",
    "message": "Deployment does not have minimum availability.",
    "lastUpdateTime": "2019-01-01T00:00:50Z",
    "lastTransitionTime": "2019-01-01T00:00:49Z",
}


def test_the_controllers_conditions_and_ready_pods_are_reported() -> None:
    dep = deployment("R2", updated=1, available=1, conditions=[UNAVAILABLE, TIMED_OUT])
    dep["status"]["readyReplicas"] = 2
    (web,) = rollout_status(namespace("R2", {"web": 2}), {"web": dep}, []).services
    assert web.ready == 2
    progressing, available = web.progressing, web.availability
    assert progressing is not None and available is not None
    assert (progressing.status, progressing.reason, progressing.message) == (
        "False",
        "ProgressDeadlineExceeded",
        'ReplicaSet "web-6d4cf56db6" has timed out progressing.',
    )
    assert progressing.last_update_time == T0 + timedelta(minutes=10, seconds=51)
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
    assert available.last_update_time == T0 + timedelta(seconds=50)
    assert available.last_transition_time == T0 + timedelta(seconds=49)


def test_no_conditions_are_reported_before_the_controller_observed_the_release() -> None:
    # They describe the rollout of the template before (e.g. the one a rollback undoes).
    stale = deployment("R2", generation=3, observed=2, conditions=[TIMED_OUT])
    older = deployment("R1", conditions=[TIMED_OUT])
    for dep in (stale, older):
        (web,) = rollout_status(namespace("R2", {"web": 2}), {"web": dep}, []).services
        assert web.conditions == ()


def test_no_namespace_means_no_release() -> None:
    assert rollout_status(None, {}, []) == RolloutStatus("", ())


# -- events ------------------------------------------------------------------------------------


def event(uid: str, reason: str = "BackOff", count: int = 1, at: datetime = T0) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "name": f"web-1.{uid}"},
        "involvedObject": {"kind": "Pod", "name": "web-745f845dc-rzl2q"},
        "reason": reason,
        "message": "Back-off restarting failed container",
        "count": count,
        "lastTimestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_events_listed_at_the_start_are_not_reported_but_their_repeats_are() -> None:
    tracker = EventTracker(since=T0)
    tracker.baseline([event("a", count=2)])
    assert tracker.changed("MODIFIED", event("a", count=2), T0) is None  # nothing new
    again = tracker.changed("MODIFIED", event("a", count=3, at=T0 + timedelta(seconds=9)), T0)
    assert again is not None
    assert (again.source, again.reason, again.time) == (
        "system/k8s/web-745f845dc-rzl2q",
        "BackOff",
        T0 + timedelta(seconds=9),
    )
    assert tracker.changed("ADDED", event("b"), T0) is not None
    assert tracker.changed("ADDED", event("b"), T0) is None  # the same occurrence twice
    tracker.changed("DELETED", event("b"), T0)
    assert len(tracker) == 1


def test_series_counts_of_newer_events_count_as_repeats() -> None:
    tracker = EventTracker(since=T0)
    first = {
        **event("s", count=0),
        "series": {"count": 2, "lastObservedTime": "2019-01-01T00:01:00.5Z"},
    }
    tracker.baseline([])
    reported = tracker.changed("ADDED", first, T0)
    assert reported is not None and reported.time == datetime(2019, 1, 1, 0, 1, 0, 500000, UTC)
    assert tracker.changed("MODIFIED", {**first, "series": {"count": 3}}, T0) is not None


def test_after_a_relist_unseen_events_since_the_start_and_repeats_are_reported() -> None:
    tracker = EventTracker(since=T0)
    tracker.baseline([event("old", count=1, at=T0 - timedelta(minutes=5))])
    missed = tracker.relisted(
        [
            event("old", count=1, at=T0 - timedelta(minutes=5)),  # unchanged
            event("before", at=T0 - timedelta(seconds=1)),  # happened before we started
            event("new", reason="Pulling", at=T0 + timedelta(seconds=2)),
        ],
        T0,
    )
    assert [e.reason for e in missed] == ["Pulling"]
    again = tracker.relisted([event("old", count=2, at=T0 + timedelta(seconds=3))], T0)
    assert [e.reason for e in again] == ["BackOff"]


# -- the watch loop ----------------------------------------------------------------------------


class ScriptedResponse:
    """What the client returns with ``_preload_content=False``: a body, maybe a stream that
    stays open until the response is closed (as a watch does until its timeout)."""

    def __init__(
        self,
        body: dict[str, Any] | None = None,
        lines: list[dict[str, Any]] | None = None,
        *,
        hold: bool = False,
    ) -> None:
        self.data = json.dumps(body or {}).encode()
        self._lines = lines or []
        self._closed = threading.Event()
        self._hold = hold
        self.connection = None

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for line in self._lines:
            yield (json.dumps(line) + "\n").encode()
        if self._hold:
            self._closed.wait()

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        self._closed.set()


class Script:
    """A list function answering its calls with ``steps`` in order, then with open, empty
    watches (as a quiet server does)."""

    def __init__(self, steps: list[Callable[[dict[str, Any]], Any]]) -> None:
        self.steps = steps
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> Any:
        with self.lock:
            self.calls.append(kwargs)
            step = self.steps.pop(0) if self.steps else None
        if step is None:
            return ScriptedResponse(hold=True)
        return step(kwargs)


def listing(version: str, *names: str) -> Callable[[dict[str, Any]], Any]:
    def answer(kwargs: dict[str, Any]) -> Any:
        assert not kwargs.get("watch")
        items = [{"metadata": {"name": n}} for n in names]
        return ScriptedResponse({"items": items, "metadata": {"resourceVersion": version}})

    return answer


def watching(lines: list[dict[str, Any]], *, hold: bool = False) -> Callable[[dict[str, Any]], Any]:
    def answer(kwargs: dict[str, Any]) -> Any:
        assert kwargs.get("watch") is True
        return ScriptedResponse(lines=lines, hold=hold)

    return answer


def failing(exc: BaseException) -> Callable[[dict[str, Any]], Any]:
    def answer(kwargs: dict[str, Any]) -> Any:
        raise exc

    return answer


def added(name: str, version: str) -> dict[str, Any]:
    return {"type": "ADDED", "object": {"metadata": {"name": name, "resourceVersion": version}}}


def run_watch(script: Script) -> tuple[ResourceWatch, list[WatchReport]]:
    reports: list[WatchReport] = []
    lock = threading.Lock()

    def sink(report: WatchReport) -> None:
        with lock:
            reports.append(report)

    watch = ResourceWatch("pod", k8s.Configuration(), lambda api: script, sink, timeout_seconds=5)
    watch.start()
    return watch, reports


def test_a_watch_whose_version_expired_lists_again_then_watches_from_the_new_version() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    script = Script(
        [
            listing("10", "a"),
            watching([gone]),
            listing("20", "a", "b"),
            watching([added("c", "21")], hold=True),
        ]
    )
    watch, reports = run_watch(script)
    try:
        wait_for(lambda: len(reports) >= 3, what="two lists and a change")
    finally:
        watch.stop()
    assert watch.join(5.0)  # the open watch was interrupted, not waited out
    first, second, change = reports[:3]
    assert isinstance(first, Listed) and not first.relist and len(first.items) == 1
    assert isinstance(second, Listed) and second.relist and len(second.items) == 2
    assert isinstance(change, Changed) and (change.type, change.obj["metadata"]["name"]) == (
        "ADDED",
        "c",
    )
    versions = [c.get("resource_version") for c in script.calls if c.get("watch")]
    assert versions[:2] == ["10", "20"]


def test_a_dropped_connection_resumes_from_the_last_version_seen_without_listing_again() -> None:
    script = Script(
        [
            listing("10"),
            watching(
                [
                    added("a", "11"),
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                ]
            ),
            failing(urllib3.exceptions.ProtocolError("connection reset")),
            watching([added("b", "16")], hold=True),
        ]
    )
    watch, reports = run_watch(script)
    try:
        wait_for(lambda: len(reports) >= 3, what="both changes")
    finally:
        watch.stop()
    assert watch.join(5.0)
    assert [type(r).__name__ for r in reports[:3]] == ["Listed", "Changed", "Changed"]
    watches = [c.get("resource_version") for c in script.calls if c.get("watch")]
    assert watches[:3] == ["10", "15", "15"]  # resumed after the bookmark, never re-listed
    assert sum(1 for c in script.calls if not c.get("watch")) == 1


def test_refused_credentials_end_the_watch_with_an_error() -> None:
    script = Script([failing(ApiException(status=401, reason="Unauthorized"))])
    watch, reports = run_watch(script)
    assert watch.join(5.0)
    (report,) = reports
    assert isinstance(report, Failed) and isinstance(report.error, Unauthenticated)
