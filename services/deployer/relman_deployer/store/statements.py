"""The statements of the Deployer's busy paths (start, event appends, finish, reads of one
deployment), each built once at import with named bind parameters (``p_...``): executing a
prebuilt statement finds its compiled form in SQLAlchemy's cache without building it again,
and the per-deployment updates of a batch of events are one ``executemany`` each."""

from __future__ import annotations

from typing import Any

from relman_common.lifecycle import Outcome
from sqlalchemy import bindparam, delete, insert, select, update

from relman_deployer.store.tables import deploy_leases, deployment_events, deployments

RUNNING = Outcome.RUNNING.value

GET = select(deployments).where(deployments.c.id == bindparam("p_id"))
RUNNING_OF_APP = (
    select(deployments)
    .where(deployments.c.app == bindparam("p_app"), deployments.c.outcome == RUNNING)
    .order_by(deployments.c.started)
    .limit(1)
)
LEASE_FOR_UPDATE = (
    select(deploy_leases).where(deploy_leases.c.app == bindparam("p_app")).with_for_update()
)
INSERT_LEASE = insert(deploy_leases)
TAKE_LEASE = (
    update(deploy_leases)
    .where(deploy_leases.c.app == bindparam("p_app"))
    .values(
        owner=bindparam("p_owner"),
        deployment_id=bindparam("p_deployment_id"),
        expires_at=bindparam("p_expires_at"),
    )
)
FREE_LEASE = delete(deploy_leases).where(
    deploy_leases.c.deployment_id == bindparam("p_deployment_id")
)
INSERT_DEPLOYMENT = insert(deployments)

INSERT_EVENTS = insert(deployment_events)
EVENTS_AFTER = (
    select(deployment_events)
    .where(
        deployment_events.c.deployment_id == bindparam("p_id"),
        deployment_events.c.seq > bindparam("p_after"),
    )
    .order_by(deployment_events.c.seq)
)
EVENTS_AFTER_LIMITED = EVENTS_AFTER.limit(bindparam("p_limit"))
# Executed many at once: one parameter set per deployment (last_seq) or phase change.
ADVANCE_LAST_SEQ = (
    update(deployments)
    .where(deployments.c.id == bindparam("p_id"), deployments.c.last_seq < bindparam("p_seq"))
    .values(last_seq=bindparam("p_seq"))
)
ENTER_PHASE = (
    update(deployments)
    .where(deployments.c.id == bindparam("p_id"), deployments.c.outcome == RUNNING)
    .values(phase=bindparam("p_phase"), reason=bindparam("p_reason"))
)
_END: dict[str, Any] = {
    "outcome": bindparam("p_outcome"),
    "reason": bindparam("p_reason"),
    "ended": bindparam("p_ended"),
    "phase": bindparam("p_phase"),
}
_RUNNING_ONE = update(deployments).where(
    deployments.c.id == bindparam("p_id"), deployments.c.outcome == RUNNING
)
END = _RUNNING_ONE.values(_END)
END_AT_SEQ = _RUNNING_ONE.values({**_END, "last_seq": bindparam("p_last_seq")})
