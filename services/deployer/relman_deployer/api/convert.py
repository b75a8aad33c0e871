"""Domain values to protobuf messages (the only place that knows both; fields go to the
message fields of their names, by :func:`relman_common.messages.to_message`)."""

from __future__ import annotations

from collections import OrderedDict

from relman.v1 import deployer_pb2  # type: ignore[import-not-found]
from relman_common.messages import to_message

from relman_deployer.domain.model import Deployment, DeploymentEvent


def deployment_to_pb(d: Deployment) -> deployer_pb2.Deployment:
    return to_message(deployer_pb2.Deployment, d)


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
