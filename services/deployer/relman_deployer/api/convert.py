"""Domain values to protobuf messages (the only place that knows both; fields go to the
message fields of their names, by :func:`relman_common.messages.to_message`)."""

from __future__ import annotations

from collections import OrderedDict

from relman.v1 import deployer_pb2  # type: ignore[import-not-found]
from relman_common.messages import to_message
from relman_common.timestamps import timestamp

from relman_deployer.domain.diagnostics import (
    Diagnostics,
    PodDiagnostics,
    ServiceDiagnostics,
    WarningEvent,
)
from relman_deployer.domain.model import Deployment, DeploymentEvent


def deployment_to_pb(
    d: Deployment, diagnostics: Diagnostics | None = None
) -> deployer_pb2.Deployment:
    msg = to_message(deployer_pb2.Deployment, d)
    if diagnostics is not None:
        msg.diagnostics.extend(service_diagnostics_to_pb(s) for s in diagnostics.services)
        msg.diagnostics_recorded.CopyFrom(timestamp(diagnostics.recorded))
    return msg


def service_diagnostics_to_pb(s: ServiceDiagnostics) -> deployer_pb2.ServiceDiagnostics:
    return to_message(
        deployer_pb2.ServiceDiagnostics,
        s,
        pods=[pod_diagnostics_to_pb(p) for p in s.pods],
        events=[warning_to_pb(e) for e in s.events],
    )


def pod_diagnostics_to_pb(p: PodDiagnostics) -> deployer_pb2.PodDiagnostics:
    return to_message(deployer_pb2.PodDiagnostics, p, logs=list(p.logs))


def warning_to_pb(e: WarningEvent) -> deployer_pb2.WarningEvent:
    return to_message(deployer_pb2.WarningEvent, e)


def event_to_pb(e: DeploymentEvent) -> deployer_pb2.DeploymentEvent:
    return to_message(deployer_pb2.DeploymentEvent, e)


def update_to_pb(item: Deployment | DeploymentEvent) -> deployer_pb2.DeploymentUpdate:
    if isinstance(item, Deployment):
        return deployer_pb2.DeploymentUpdate(deployment=deployment_to_pb(item))
    return deployer_pb2.DeploymentUpdate(event=event_to_pb(item))


class UpdateMessages:
    """``update_to_pb`` that builds each event's message once, however many watchers send it.

    An event is identified by its deployment and sequence number: that is its primary key in
    the event log, an event is only ever sent once written there, and a written event never
    changes. So the watchers of a deployment, live or replaying, share one message per event;
    the oldest entries go first. Messages are shared and must not be modified.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._size = size
        self._events: OrderedDict[tuple[str, int], deployer_pb2.DeploymentUpdate] = OrderedDict()

    def __call__(self, item: Deployment | DeploymentEvent) -> deployer_pb2.DeploymentUpdate:
        if isinstance(item, Deployment):
            return update_to_pb(item)
        key = (item.deployment_id, item.seq)
        msg = self._events.get(key)
        if msg is None:
            msg = self._events[key] = update_to_pb(item)
            if len(self._events) > self._size:
                self._events.popitem(last=False)
        return msg
