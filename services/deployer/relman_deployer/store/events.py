"""The event log of deployments, durable: append (with the phase a StatusChange enters) and
read back in order."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.model import DeploymentEvent, PhaseChange
from relman_deployer.store import rows
from relman_deployer.store.base import RUNNING, StoreBase
from relman_deployer.store.tables import deployment_events, deployments

log = logging.getLogger("relman.deployer.store")


class EventQueries(StoreBase):
    async def append_events(
        self, events: Sequence[DeploymentEvent], phases: Sequence[PhaseChange] = ()
    ) -> list[DeploymentEvent]:
        """Write ``events`` (of any deployments), advance each deployment's ``last_seq`` and
        apply ``phases``, in one transaction; the events written.

        When another instance wrote some deployment's sequence numbers already (it took that
        deployment over), the other deployments' events are written still and that
        deployment's are dropped (its new owner has them).
        """
        if not events and not phases:
            return []
        try:
            await self._write(lambda conn: _append(conn, events, phases))
            return list(events)
        except IntegrityError:
            pass
        written: list[DeploymentEvent] = []
        groups = rows.group_by_deployment(events)
        for deployment_id in {*groups, *(p.deployment_id for p in phases)}:
            group = groups.get(deployment_id, [])
            mine = [p for p in phases if p.deployment_id == deployment_id]
            try:
                await self._write(functools.partial(_append, events=group, phases=mine))
            except IntegrityError:
                log.error(
                    "deployment %s: events %d-%d already written by another instance; dropped",
                    deployment_id,
                    group[0].seq if group else 0,
                    group[-1].seq if group else 0,
                )
                continue
            written.extend(group)
        return written

    async def events_after(
        self, deployment_id: str, after_seq: int, limit: int | None = None
    ) -> list[DeploymentEvent]:
        def run(conn: Connection) -> list[DeploymentEvent]:
            query = (
                select(deployment_events)
                .where(
                    deployment_events.c.deployment_id == deployment_id,
                    deployment_events.c.seq > after_seq,
                )
                .order_by(deployment_events.c.seq)
            )
            if limit is not None:
                query = query.limit(limit)
            return [rows.event(row) for row in conn.execute(query).mappings()]

        return await self._read(run)


def _append(
    conn: Connection, events: Sequence[DeploymentEvent], phases: Sequence[PhaseChange]
) -> None:
    if events:
        conn.execute(insert(deployment_events), [rows.event_row(e) for e in events])
    last: dict[str, int] = {}
    for event in events:
        last[event.deployment_id] = max(last.get(event.deployment_id, 0), event.seq)
    for deployment_id, seq in last.items():
        conn.execute(
            update(deployments)
            .where(deployments.c.id == deployment_id, deployments.c.last_seq < seq)
            .values(last_seq=seq)
        )
    for change in phases:
        conn.execute(
            update(deployments)
            .where(deployments.c.id == change.deployment_id, deployments.c.outcome == RUNNING)
            .values(phase=change.phase.value, reason=change.reason)
        )
