"""Domain values to protobuf messages (the only place that knows both)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from relman.v1 import deployer_pb2  # type: ignore[import-not-found]

from relman_deployer.domain.model import Deployment, DeploymentEvent


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def deployment_to_pb(d: Deployment) -> deployer_pb2.Deployment:
    msg = deployer_pb2.Deployment(
        id=d.id,
        app=d.app,
        release_id=d.release_id,
        previous_release_id=d.previous_release_id,
        actor=d.actor,
        started=timestamp(d.started),
        outcome=d.outcome.value,
        reason=d.reason,
        last_seq=d.last_seq,
        kind=d.kind.value,
        rollback_of=d.rollback_of,
    )
    if d.ended is not None:
        msg.ended.CopyFrom(timestamp(d.ended))
    return msg


def event_to_pb(e: DeploymentEvent) -> deployer_pb2.DeploymentEvent:
    return deployer_pb2.DeploymentEvent(
        deployment_id=e.deployment_id,
        seq=e.seq,
        time=timestamp(e.time),
        source=e.source,
        reason=e.reason,
        message=e.message,
    )


def update_to_pb(item: Deployment | DeploymentEvent) -> deployer_pb2.DeploymentUpdate:
    if isinstance(item, Deployment):
        return deployer_pb2.DeploymentUpdate(deployment=deployment_to_pb(item))
    return deployer_pb2.DeploymentUpdate(event=event_to_pb(item))
