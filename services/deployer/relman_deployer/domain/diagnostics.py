"""What a deployment's rollout looked like, per service: counts, each pod's state, the last
warning events and (kubernetes) the last log lines of failing pods. Pure values, recorded as
the rollout goes and kept with the deployment, so an ended deployment still shows why.

>>> from datetime import UTC, datetime
>>> from relman_deployer.backends.base import (BackendEvent, PodState, RolloutStatus,
...     ServiceStatus)
>>> t0 = datetime(2019, 1, 1, tzinfo=UTC)
>>> r = DiagnosticsRecorder("R1")
>>> pod = PodState("web-5d4f8b7c9-rzl2q", state="waiting", reason="ImagePullBackOff")
>>> r.status(RolloutStatus("R1", (ServiceStatus("web", 2, 1, 1, 0, pods=(pod,)),)))
>>> r.event(BackendEvent(t0, "system/k8s/web-5d4f8b7c9-rzl2q", "Failed",
...                      "Error: ImagePullBackOff", type="Warning"))
>>> r.event(BackendEvent(t0, "system/k8s/web", "ScalingReplicaSet", "Scaled up"))  # Normal
>>> (web,) = r.snapshot(t0).services
>>> web.desired, web.updated, web.ready, [p.reason for p in web.pods], len(web.events)
(2, 1, 0, ['ImagePullBackOff'], 1)
>>> decode(encode(r.snapshot(t0))) == r.snapshot(t0)
True
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from relman_common.clock import as_utc

from relman_deployer.backends.base import BackendEvent, PodState, RolloutStatus, ServiceStatus

# What is kept per service: the last warning events, log lines per failing pod.
EVENTS_KEPT = 10
LOG_LINES = 20
# Failing pods whose logs are fetched per service (the first ones by name).
LOG_PODS = 3
SOURCE_PREFIX = "system/k8s/"


@dataclass(frozen=True)
class WarningEvent:
    time: datetime
    source: str
    reason: str
    message: str


@dataclass(frozen=True)
class PodDiagnostics:
    name: str
    phase: str = ""
    ready: bool = False
    restarts: int = 0
    # waiting | running | terminated | "" (no container yet), its reason and message.
    state: str = ""
    reason: str = ""
    message: str = ""
    last_termination: str = ""
    exit_code: int | None = None
    unschedulable: str = ""
    # The last lines its container wrote (kubernetes, failing pods only).
    logs: tuple[str, ...] = ()

    @property
    def failing(self) -> bool:
        return bool(
            self.unschedulable
            or self.state == "terminated"
            or (self.state == "waiting" and self.reason not in ("", "ContainerCreating"))
            or self.last_termination
        )

    @staticmethod
    def of(pod: PodState) -> PodDiagnostics:
        return PodDiagnostics(
            name=pod.name,
            phase=pod.phase,
            ready=pod.ready,
            restarts=pod.restarts,
            state=pod.state,
            reason=pod.reason,
            message=pod.message,
            last_termination=pod.last_termination,
            exit_code=pod.exit_code,
            unschedulable=pod.unschedulable,
        )


@dataclass(frozen=True)
class ServiceDiagnostics:
    name: str
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    pods: tuple[PodDiagnostics, ...] = ()
    events: tuple[WarningEvent, ...] = ()


@dataclass(frozen=True)
class Diagnostics:
    """The rollout of ``release_id`` as last recorded (at ``recorded``)."""

    release_id: str
    recorded: datetime
    services: tuple[ServiceDiagnostics, ...] = ()


@dataclass
class _Service:
    status: ServiceStatus
    events: deque[WarningEvent] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))


class DiagnosticsRecorder:
    """Collects the diagnostics of one rollout towards ``release_id`` from what the backend
    reports: its status snapshots (of that release only) and its warning events."""

    def __init__(self, release_id: str) -> None:
        self.release_id = release_id
        self._services: dict[str, _Service] = {}
        self._early: deque[BackendEvent] = deque(maxlen=EVENTS_KEPT)
        self._logs: dict[str, tuple[str, ...]] = {}
        self.changed = False

    def status(self, status: RolloutStatus) -> None:
        if status.release_id != self.release_id:
            return
        for service in status.services:
            known = self._services.get(service.name)
            if known is None:
                self._services[service.name] = _Service(service)
            elif known.status != service:
                known.status = service
            else:
                continue
            self.changed = True
        early, self._early = list(self._early), deque(maxlen=EVENTS_KEPT)
        for event in early:
            self.event(event)

    def event(self, event: BackendEvent) -> None:
        """Keep ``event`` when it is a warning about one of the release's services."""
        if not event.warning:
            return
        if not self._services:  # no status yet: which service it is about is not known
            self._early.append(event)
            return
        service = self._service_of(event.source)
        if service is None:
            return
        service.events.append(WarningEvent(event.time, event.source, event.reason, event.message))
        self.changed = True

    def failing_pods(self) -> list[tuple[str, PodState]]:
        """``(service, pod)`` of pods worth fetching logs of (failing, at most a few each)."""
        found: list[tuple[str, PodState]] = []
        for name, service in self._services.items():
            failing = [p for p in service.status.pods if PodDiagnostics.of(p).failing]
            found.extend((name, pod) for pod in failing[:LOG_PODS])
        return found

    def logs(self, pod: str, lines: list[str]) -> None:
        self._logs[pod] = tuple(lines[-LOG_LINES:])
        self.changed = True

    def snapshot(self, now: datetime) -> Diagnostics:
        services = []
        for name, known in self._services.items():
            s = known.status
            pods = tuple(
                replace(PodDiagnostics.of(p), logs=self._logs.get(p.name, ())) for p in s.pods
            )
            services.append(
                ServiceDiagnostics(
                    name=name,
                    desired=s.desired,
                    updated=s.updated,
                    ready=s.ready,
                    available=s.available,
                    pods=pods,
                    events=tuple(known.events),
                )
            )
        return Diagnostics(self.release_id, now, tuple(services))

    def _service_of(self, source: str) -> _Service | None:
        """The service an event's object belongs to: ``web``, ``web-<hash>``,
        ``web-<hash>-<pod>`` (the longest service name that fits)."""
        obj = source.removeprefix(SOURCE_PREFIX)
        best: str | None = None
        for name in self._services:
            if (obj == name or obj.startswith(f"{name}-")) and (
                best is None or len(name) > len(best)
            ):
                best = name
        return self._services[best] if best is not None else None


# -- stored as JSON ---------------------------------------------------------------------------


def encode(d: Diagnostics) -> str:
    def event(e: WarningEvent) -> dict[str, Any]:
        return {
            "time": as_utc(e.time).isoformat(),
            "source": e.source,
            "reason": e.reason,
            "message": e.message,
        }

    def pod(p: PodDiagnostics) -> dict[str, Any]:
        return {
            "name": p.name,
            "phase": p.phase,
            "ready": p.ready,
            "restarts": p.restarts,
            "state": p.state,
            "reason": p.reason,
            "message": p.message,
            "last_termination": p.last_termination,
            "exit_code": p.exit_code,
            "unschedulable": p.unschedulable,
            "logs": list(p.logs),
        }

    body = {
        "release_id": d.release_id,
        "recorded": as_utc(d.recorded).isoformat(),
        "services": [
            {
                "name": s.name,
                "desired": s.desired,
                "updated": s.updated,
                "ready": s.ready,
                "available": s.available,
                "pods": [pod(p) for p in s.pods],
                "events": [event(e) for e in s.events],
            }
            for s in d.services
        ],
    }
    return json.dumps(body, separators=(",", ":"))


def decode(text: str) -> Diagnostics:
    body = json.loads(text)
    services = tuple(
        ServiceDiagnostics(
            name=s["name"],
            desired=int(s["desired"]),
            updated=int(s["updated"]),
            ready=int(s["ready"]),
            available=int(s["available"]),
            pods=tuple(
                PodDiagnostics(
                    name=p["name"],
                    phase=p["phase"],
                    ready=bool(p["ready"]),
                    restarts=int(p["restarts"]),
                    state=p["state"],
                    reason=p["reason"],
                    message=p["message"],
                    last_termination=p["last_termination"],
                    exit_code=p["exit_code"],
                    unschedulable=p["unschedulable"],
                    logs=tuple(p["logs"]),
                )
                for p in s["pods"]
            ),
            events=tuple(
                WarningEvent(
                    time=as_utc(datetime.fromisoformat(e["time"])),
                    source=e["source"],
                    reason=e["reason"],
                    message=e["message"],
                )
                for e in s["events"]
            ),
        )
        for s in body["services"]
    )
    recorded = as_utc(datetime.fromisoformat(body["recorded"]))
    return Diagnostics(body["release_id"], recorded, services)
