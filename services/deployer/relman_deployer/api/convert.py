"""Domain values to protobuf messages (the only place that knows both; fields go to the
message fields of their names, by :func:`relman_common.messages.to_message`)."""

from __future__ import annotations

import json
from collections import OrderedDict

from relman.v1 import deployer_pb2  # type: ignore[import-not-found]
from relman_common.manifest.proto import release_command_to_pb
from relman_common.messages import to_message
from relman_common.timestamps import timestamp

from relman_deployer.domain.diagnostics import (
    Diagnostics,
    PodDiagnostics,
    ServiceDiagnostics,
    WarningEvent,
)
from relman_deployer.domain.model import Deployment, DeploymentEvent
from relman_deployer.domain.plan import Change, Json, PromotionPlan

_CHANGE_TO_PB = {
    Change.UNCHANGED: deployer_pb2.CHANGE_UNCHANGED,
    Change.ADDED: deployer_pb2.CHANGE_ADDED,
    Change.REMOVED: deployer_pb2.CHANGE_REMOVED,
    Change.CHANGED: deployer_pb2.CHANGE_CHANGED,
}


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


def _json(obj: Json | None) -> str:
    return "" if obj is None else json.dumps(obj, sort_keys=True, ensure_ascii=False)


def plan_to_pb(plan: PromotionPlan) -> deployer_pb2.PromotionPlan:
    """The plan in the clear (env values, Secret data): clients mask what they show."""
    msg = deployer_pb2.PromotionPlan(
        app=plan.app,
        release_id=plan.release_id,
        active_release_id=plan.active_release_id,
        build_id=plan.build_id,
        active_build_id=plan.active_build_id,
        services=[
            deployer_pb2.ServicePlan(
                name=s.name,
                change=_CHANGE_TO_PB[s.change],
                old_image=s.old_image,
                new_image=s.new_image,
                settings=[
                    deployer_pb2.SettingChange(
                        name=c.name, old_value=c.old_value, new_value=c.new_value
                    )
                    for c in s.settings
                ],
            )
            for s in plan.services
        ],
        env=[
            deployer_pb2.EnvPlan(
                key=e.key,
                change=_CHANGE_TO_PB[e.change],
                old_value=e.old_value,
                new_value=e.new_value,
            )
            for e in plan.env
        ],
        backend=plan.backend,
        objects=[
            deployer_pb2.ObjectPlan(
                kind=o.kind,
                name=o.name,
                change=_CHANGE_TO_PB[o.change],
                before_json=_json(o.before),
                after_json=_json(o.after),
            )
            for o in plan.objects
        ],
        changed=plan.changed,
        warnings=list(plan.warnings),
    )
    command = plan.release_command
    if command is not None:
        msg.release_command.CopyFrom(release_command_to_pb(command))
    return msg
