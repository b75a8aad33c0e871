"""From Kubernetes objects (as JSON dicts) to the backend's observations; pure, no API calls.

:func:`rollout_status` reads the app's namespace (which release is desired, with which
services), its Deployments and its pods. :class:`EventTracker` turns core/v1 Events into
:class:`BackendEvent` occurrences: a new Event, or a repeat of one (``count`` or
``series.count`` going up, which is how Kubernetes records ``BackOff`` every few seconds).

>>> ns = {"metadata": {"annotations": {RELEASE_ANNOTATION: "R2", SERVICES_ANNOTATION: '{"web":2}'}}}
>>> dep = {"metadata": {"generation": 2, "annotations": {RELEASE_ANNOTATION: "R2"}},
...        "spec": {"replicas": 2},
...        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
...                   "readyReplicas": 2, "availableReplicas": 2, "conditions": [
...                   {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
...                    "message": 'ReplicaSet "web-5d4f8b7c9" is progressing.',
...                    "lastUpdateTime": "2019-01-01T00:00:51Z",
...                    "lastTransitionTime": "2019-01-01T00:00:50Z"}]}}
>>> (web,) = rollout_status(ns, {"web": dep}, []).services
>>> web.desired, web.updated, web.total, web.ready, web.available
(2, 1, 3, 2, 2)
>>> web.progressing.reason, web.progressing.last_update_time.isoformat()
('ReplicaSetUpdated', '2019-01-01T00:00:51+00:00')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from relman_deployer.backends.base import BackendEvent, PodState, RolloutStatus, ServiceStatus
from relman_deployer.backends.kubernetes.manifests import (
    NAME_LABEL,
    RELEASE_ANNOTATION,
    SERVICES_ANNOTATION,
)
from relman_deployer.rollout import DeploymentCondition

Json = dict[str, Any]

# A condition without a time (never written so by the controller) counts as very old.
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _meta(obj: Mapping[str, Any] | None) -> Json:
    return dict((obj or {}).get("metadata") or {})


def desired_services(namespace: Mapping[str, Any] | None) -> tuple[str, dict[str, int]]:
    """The release the namespace is annotated with and its services (name -> replicas).

    >>> desired_services(None)
    ('', {})
    >>> desired_services({"metadata": {"annotations": {RELEASE_ANNOTATION: "R1",
    ...                                                SERVICES_ANNOTATION: "not json"}}})
    ('R1', {})
    """
    annotations = _meta(namespace).get("annotations") or {}
    release = str(annotations.get(RELEASE_ANNOTATION, ""))
    try:
        raw = json.loads(annotations.get(SERVICES_ANNOTATION) or "{}")
    except ValueError:
        raw = {}
    services: dict[str, int] = {}
    if isinstance(raw, dict):
        for name, replicas in raw.items():
            if isinstance(replicas, int):
                services[str(name)] = replicas
    return release, services


def pod_restarts(pods: Iterable[Mapping[str, Any]], service: str, release: str) -> int:
    """Highest container restart count among ``service``'s pods of ``release``'s template."""
    highest = 0
    for pod in pods:
        meta = _meta(pod)
        if (meta.get("labels") or {}).get(NAME_LABEL) != service:
            continue
        if (meta.get("annotations") or {}).get(RELEASE_ANNOTATION) != release:
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            highest = max(highest, int(status.get("restartCount") or 0))
    return highest


def _of_release(pod: Mapping[str, Any], service: str, release: str) -> bool:
    meta = _meta(pod)
    return (meta.get("labels") or {}).get(NAME_LABEL) == service and (
        meta.get("annotations") or {}
    ).get(RELEASE_ANNOTATION) == release


def pod_state(pod: Mapping[str, Any]) -> PodState:
    """A pod as its kubelet (and the scheduler) report it.

    >>> p = pod_state({"metadata": {"name": "web-1"}, "spec": {"containers": [
    ...     {"name": "main", "image": "reg/x:y"}]}, "status": {"phase": "Pending",
    ...     "containerStatuses": [{"name": "main", "image": "reg/x:y", "ready": False,
    ...     "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
    ...     "message": 'Back-off pulling image "reg/x:y"'}}}]}})
    >>> p.name, p.phase, p.state, p.reason, p.image
    ('web-1', 'Pending', 'waiting', 'ImagePullBackOff', 'reg/x:y')
    >>> pod_state({"metadata": {"name": "web-2"}, "status": {"phase": "Pending", "conditions": [
    ...     {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
    ...      "message": "0/2 nodes are available: 2 Insufficient cpu."}]}}).unschedulable
    '0/2 nodes are available: 2 Insufficient cpu.'
    """
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    images = {str(c.get("name")): str(c.get("image") or "") for c in spec.get("containers") or []}
    unschedulable = ""
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "Unschedulable")
    statuses = list(status.get("containerStatuses") or [])
    # The container that says most: the first that is not ready (else the first).
    chosen = next((c for c in statuses if not c.get("ready")), statuses[0] if statuses else {})
    state_name, state = "", cast(Json, {})
    for key in ("waiting", "terminated", "running"):
        if (chosen.get("state") or {}).get(key) is not None:
            state_name, state = key, (chosen.get("state") or {})[key] or {}
            break
    last = (chosen.get("lastState") or {}).get("terminated") or {}
    exit_code = state.get("exitCode") if state_name == "terminated" else last.get("exitCode")
    name = str(chosen.get("name") or next(iter(images), ""))
    return PodState(
        name=str(_meta(pod).get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        ready=bool(statuses) and all(bool(c.get("ready")) for c in statuses),
        restarts=max((int(c.get("restartCount") or 0) for c in statuses), default=0),
        container=name,
        image=str(chosen.get("image") or images.get(name, "")),
        state=state_name,
        reason=str(state.get("reason") or ""),
        message=str(state.get("message") or "").strip(),
        last_termination=str(last.get("reason") or ""),
        exit_code=int(exit_code) if exit_code is not None else None,
        unschedulable=unschedulable,
    )


def pod_states(
    pods: Iterable[Mapping[str, Any]], service: str, release: str
) -> tuple[PodState, ...]:
    """The states of ``service``'s pods of ``release``'s template (not being deleted), by
    name."""
    found = [
        pod_state(p)
        for p in pods
        if _of_release(p, service, release) and not _meta(p).get("deletionTimestamp")
    ]
    return tuple(sorted(found, key=lambda p: p.name))


def service_status(
    name: str,
    desired: int,
    release: str,
    deployment: Mapping[str, Any] | None,
    restarts: int,
    pods: tuple[PodState, ...] = (),
) -> ServiceStatus:
    """One service's progress towards ``release``, as its Deployment's status reports it.

    Until the Deployment controller has observed the Deployment's latest generation for this
    release, its counts and conditions describe an older template: nothing is counted as
    updated then and no condition is reported, so a snapshot is never complete (nor failed)
    too early (``DeploymentComplete`` checks the generation too).
    """
    if deployment is None or _meta(deployment).get("deletionTimestamp"):
        return ServiceStatus(name, desired, 0, 0, 0, restarts, pods=pods)
    meta = _meta(deployment)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    is_release = (meta.get("annotations") or {}).get(RELEASE_ANNOTATION) == release
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    current = is_release and observed
    if is_release:
        replicas = spec.get("replicas")
        desired = int(replicas) if replicas is not None else 1
    return ServiceStatus(
        name=name,
        desired=desired,
        updated=int(status.get("updatedReplicas") or 0) if current else 0,
        total=int(status.get("replicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        restarts=restarts,
        ready=int(status.get("readyReplicas") or 0),
        conditions=deployment_conditions(status) if current else (),
        pods=pods,
    )


def deployment_conditions(status: Mapping[str, Any]) -> tuple[DeploymentCondition, ...]:
    """``status.conditions`` of a Deployment.

    >>> (c,) = deployment_conditions({"conditions": [{"type": "Available", "status": "True",
    ...     "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
    ...     "lastUpdateTime": "2019-01-01T00:00:51Z"}]})
    >>> c.reason, c.last_transition_time.year
    ('MinimumReplicasAvailable', 1970)
    """
    conditions: list[DeploymentCondition] = []
    for raw in status.get("conditions") or []:
        conditions.append(
            DeploymentCondition(
                type=str(raw.get("type") or ""),
                status=str(raw.get("status") or ""),
                reason=str(raw.get("reason") or ""),
                message=str(raw.get("message") or ""),
                last_update_time=parse_time(raw.get("lastUpdateTime")) or _NO_TIME,
                last_transition_time=parse_time(raw.get("lastTransitionTime")) or _NO_TIME,
            )
        )
    return tuple(conditions)


def rollout_status(
    namespace: Mapping[str, Any] | None,
    deployments: Mapping[str, Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
) -> RolloutStatus:
    """The app's progress towards the release its namespace is annotated with."""
    release, services = desired_services(namespace)
    pod_list = list(pods)
    statuses = tuple(
        service_status(
            name,
            desired,
            release,
            deployments.get(name),
            pod_restarts(pod_list, name, release),
            pod_states(pod_list, name, release),
        )
        for name, desired in services.items()
    )
    return RolloutStatus(release_id=release, services=statuses)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time of the API (``...Z``, with or without fractions) as aware UTC.

    >>> parse_time("2019-01-01T00:00:51Z")
    datetime.datetime(2019, 1, 1, 0, 0, 51, tzinfo=datetime.timezone.utc)
    >>> parse_time("2019-01-01T00:00:51.123456Z").microsecond, parse_time(None)
    (123456, None)
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When an Event (last) happened: the later of lastTimestamp and series.lastObservedTime,
    else eventTime, firstTimestamp, creation (the scheduler's events.k8s.io events only set
    eventTime, and series for repeats)."""
    series = event.get("series") or {}
    last = [
        t
        for t in (
            parse_time(event.get("lastTimestamp")),
            parse_time(series.get("lastObservedTime")),
        )
        if t is not None
    ]
    if last:
        return max(last)
    for value in (
        event.get("eventTime"),
        event.get("firstTimestamp"),
        _meta(event).get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None


def occurrences(event: Mapping[str, Any]) -> int:
    """How many times an Event has happened (``count`` or ``series.count``; at least 1)."""
    series = event.get("series") or {}
    return max(int(event.get("count") or 0), int(series.get("count") or 0), 1)


def backend_event(event: Mapping[str, Any], now: datetime) -> BackendEvent | None:
    """An Event as the Deployer streams it: ``system/k8s/<involvedObject.name>``.

    >>> e = backend_event({"involvedObject": {"kind": "Deployment", "name": "web"},
    ...                    "reason": "ScalingReplicaSet",
    ...                    "message": "Scaled up replica set web-5d4f8b7c9 to 1",
    ...                    "lastTimestamp": "2019-01-01T00:00:51Z"}, datetime.now(UTC))
    >>> e.source, e.reason, e.message
    ('system/k8s/web', 'ScalingReplicaSet', 'Scaled up replica set web-5d4f8b7c9 to 1')
    >>> e.time.isoformat()
    '2019-01-01T00:00:51+00:00'
    """
    involved = event.get("involvedObject") or event.get("regarding") or {}
    name = involved.get("name")
    reason = event.get("reason")
    if not name or not reason:
        return None
    return BackendEvent(
        time=event_time(event) or now,
        source=f"system/k8s/{name}",
        reason=str(reason),
        message=str(event.get("message") or "").strip(),
        type=str(event.get("type") or "Normal"),
    )


class EventTracker:
    """Which Event updates are new occurrences, for one observer that started at ``since``.

    Feed it the initial list (:meth:`baseline`: nothing in it is new), then every watch
    change (:meth:`changed`) and, after a watch had to start over, the full re-list
    (:meth:`relisted`), in which Events unseen so far count when they happened since ``since``.
    """

    def __init__(self, since: datetime) -> None:
        self.since = since
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def baseline(self, events: Iterable[Mapping[str, Any]]) -> None:
        self._counts = {_uid(e): occurrences(e) for e in events}

    def changed(self, kind: str, event: Mapping[str, Any], now: datetime) -> BackendEvent | None:
        uid = _uid(event)
        if kind == "DELETED":
            self._counts.pop(uid, None)
            return None
        if kind not in ("ADDED", "MODIFIED"):
            return None
        count = occurrences(event)
        known = self._counts.get(uid)
        self._counts[uid] = max(count, known or 0)
        if known is not None and count <= known:
            return None
        return backend_event(event, now)

    def relisted(self, events: Iterable[Mapping[str, Any]], now: datetime) -> list[BackendEvent]:
        fresh: list[BackendEvent] = []
        counts: dict[str, int] = {}
        for event in sorted(events, key=lambda e: event_time(e) or now):
            uid = _uid(event)
            count = counts[uid] = occurrences(event)
            known = self._counts.get(uid)
            if known is None:
                happened = event_time(event)
                if happened is not None and happened < self.since:
                    continue
            elif count <= known:
                continue
            converted = backend_event(event, now)
            if converted is not None:
                fresh.append(converted)
        self._counts = counts
        return fresh


def _uid(event: Mapping[str, Any]) -> str:
    meta = _meta(event)
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
