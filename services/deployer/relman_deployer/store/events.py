"""The event log of deployments, durable: append (with the phase a StatusChange enters) and
read back in order."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.model import DeploymentEvent, PhaseChange
from relman_deployer.store import rows
from relman_deployer.store import statements as q
from relman_deployer.store.base import StoreBase
from relman_deployer.store.notify import notify_written

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
            params = {"p_id": deployment_id, "p_after": after_seq, "p_limit": limit}
            query = q.EVENTS_AFTER if limit is None else q.EVENTS_AFTER_LIMITED
            return [rows.event(row) for row in conn.execute(query, params).mappings()]

        return await self._read(run)


def _append(
    conn: Connection, events: Sequence[DeploymentEvent], phases: Sequence[PhaseChange]
) -> None:
    if events:
        conn.execute(q.INSERT_EVENTS, [rows.event_row(e) for e in events])
    last: dict[str, int] = {}
    for event in events:
        last[event.deployment_id] = max(last.get(event.deployment_id, 0), event.seq)
    if last:
        conn.execute(q.ADVANCE_LAST_SEQ, [{"p_id": d, "p_seq": seq} for d, seq in last.items()])
    if phases:
        changes = [
            {"p_id": c.deployment_id, "p_phase": c.phase.value, "p_reason": c.reason}
            for c in phases
        ]
        conn.execute(q.ENTER_PHASE, changes)  # in order: the last change of each one stays
    notify_written(conn, [*last, *(c.deployment_id for c in phases)])
