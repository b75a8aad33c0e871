"""The Deployer's repository: every method is one transaction (or, for writes on SQLite, one
savepoint of a transaction shared with the writes queued meanwhile), run off the event loop.

Leases: a row per app in ``deploy_leases`` says which Deployer instance (``owner``) runs which
deployment until ``expires_at``. It is taken in the same write transaction that inserts the
deployment, so two promotions of one app can never both start; on PostgreSQL the lease row is
locked ``FOR UPDATE`` and a concurrent insert fails on the primary key, on SQLite the write
transaction holds the database's write lock from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from relman_common.clock import as_utc
from relman_common.db import DbExecutor, is_postgres, upgrade, writer
from relman_common.errors import InvalidArgument, NotFound
from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.guards import app_busy, check_cancellable, no_running_deployment
from relman_deployer.domain.model import (
    STATUS_CHANGE,
    Deployment,
    DeploymentEvent,
    Kind,
    Outcome,
    Phase,
)
from relman_deployer.store.group_commit import GroupCommit
from relman_deployer.store.tables import deploy_leases, deployment_events, deployments

T = TypeVar("T")

MIGRATIONS = "relman_deployer.store:migrations"
VERSION_TABLE = "deployer_alembic_version"
RUNNING = Outcome.RUNNING.value


def migrate(engine: Engine) -> None:
    upgrade(engine, MIGRATIONS, VERSION_TABLE)


class DeploymentStore:
    """Async access to deployments, events and leases; all SQL runs in ``executor``'s threads."""

    def __init__(self, engine: Engine, executor: DbExecutor) -> None:
        self.engine = engine
        self._executor = executor
        self._writes = GroupCommit(writer(engine), executor, grouped=not is_postgres(engine))

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return await self._executor.run(run)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction; on SQLite, one shared with the writes queued
        meanwhile (see :mod:`~relman_deployer.store.group_commit`)."""
        return await self._writes.run(fn)

    # Starting, running and ending deployments.

    async def start(self, deployment: Deployment, owner: str, lease_until: datetime) -> None:
        """Insert ``deployment`` and take its app's lease, or raise the app-busy error."""

        def run(conn: Connection) -> None:
            lease = _lease_for_update(conn, deployment.app)
            running = _running_of_app(conn, deployment.app)
            if running is not None:
                raise app_busy(running)
            values = {
                "owner": owner,
                "deployment_id": deployment.id,
                "expires_at": lease_until,
            }
            if lease is None:
                conn.execute(insert(deploy_leases).values(app=deployment.app, **values))
            else:  # left behind by a deployment that ended: take it over
                conn.execute(
                    update(deploy_leases)
                    .where(deploy_leases.c.app == deployment.app)
                    .values(values)
                )
            conn.execute(insert(deployments).values(_row(deployment)))

        try:
            await self._write(run)
        except IntegrityError:
            # Another instance inserted the app's lease at the same moment and won.
            running = await self.running_of_app(deployment.app)
            if running is None:
                raise
            raise app_busy(running) from None

    async def append_events(self, events: Sequence[DeploymentEvent]) -> None:
        """Write ``events`` (of any deployments) and advance each deployment's ``last_seq``."""
        if not events:
            return
        last: dict[str, int] = {}
        for event in events:
            last[event.deployment_id] = max(last.get(event.deployment_id, 0), event.seq)

        def run(conn: Connection) -> None:
            conn.execute(insert(deployment_events), [_event_row(e) for e in events])
            for deployment_id, seq in last.items():
                conn.execute(
                    update(deployments)
                    .where(deployments.c.id == deployment_id, deployments.c.last_seq < seq)
                    .values(last_seq=seq)
                )

        await self._write(run)

    async def renew(
        self, owner: str, deployment_ids: Collection[str], until: datetime
    ) -> dict[str, str] | None:
        """Extend the leases ``owner`` holds for ``deployment_ids``, in one statement.

        Returns ``{deployment id: cancelled_by}`` for those of ``deployment_ids`` whose lease
        ``owner`` still holds (a missing id was taken over by another instance), or None when
        ``deployment_ids`` is empty.
        """
        if not deployment_ids:
            return None
        ids = list(deployment_ids)

        def run(conn: Connection) -> dict[str, str]:
            conn.execute(
                update(deploy_leases).where(deploy_leases.c.owner == owner).values(expires_at=until)
            )
            query = (
                select(deployments.c.id, deployments.c.cancelled_by)
                .join(deploy_leases, deploy_leases.c.deployment_id == deployments.c.id)
                .where(deploy_leases.c.owner == owner, deployments.c.id.in_(ids))
            )
            return {row.id: row.cancelled_by for row in conn.execute(query)}

        return await self._write(run)

    async def set_phase(self, deployment_id: str, phase: Phase, reason: str) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                update(deployments)
                .where(deployments.c.id == deployment_id)
                .values(phase=phase.value, reason=reason)
            )

        await self._write(run)

    async def finish(
        self, deployment_id: str, outcome: Outcome, reason: str, ended: datetime
    ) -> Deployment:
        """Record the outcome and free the app's lease, in one transaction."""

        def run(conn: Connection) -> Deployment:
            conn.execute(
                update(deployments)
                .where(deployments.c.id == deployment_id, deployments.c.outcome == RUNNING)
                .values(outcome=outcome.value, reason=reason, ended=ended)
            )
            conn.execute(
                delete(deploy_leases).where(deploy_leases.c.deployment_id == deployment_id)
            )
            return _get(conn, deployment_id)

        return await self._write(run)

    async def request_cancel(self, app: str, actor: str) -> Deployment:
        """Flag the app's running deployment for cancellation; its owner turns it around."""

        def run(conn: Connection) -> Deployment:
            running = _running_of_app(conn, app)
            if running is None:
                raise no_running_deployment(app)
            check_cancellable(running)
            if not running.cancelled_by:
                conn.execute(
                    update(deployments)
                    .where(deployments.c.id == running.id)
                    .values(cancelled_by=actor or "anonymous")
                )
            return _get(conn, running.id)

        return await self._write(run)

    # Resuming deployments whose owner went away.

    async def orphans(self, now: datetime) -> list[Deployment]:
        """Running deployments whose lease is missing, expired, or held for another deployment."""

        def run(conn: Connection) -> list[Deployment]:
            query = (
                select(deployments)
                .outerjoin(deploy_leases, deploy_leases.c.app == deployments.c.app)
                .where(
                    deployments.c.outcome == RUNNING,
                    or_(
                        deploy_leases.c.app.is_(None),
                        deploy_leases.c.expires_at <= now,
                        deploy_leases.c.deployment_id != deployments.c.id,
                    ),
                )
                .order_by(deployments.c.started)
            )
            return [_deployment(row) for row in conn.execute(query).mappings()]

        return await self._read(run)

    async def claim(
        self, deployment_id: str, owner: str, now: datetime, until: datetime
    ) -> Deployment | None:
        """Take the lease of a running deployment whose lease expired; None if someone else has.

        A running deployment whose app's lease is held by a *different* deployment cannot
        happen through :meth:`start`; if it is found anyway, it is claimed too.
        """

        def run(conn: Connection) -> Deployment | None:
            deployment = _get(conn, deployment_id)
            lease = _lease_for_update(conn, deployment.app)
            if not deployment.running:
                return None
            if lease is not None and as_utc(lease["expires_at"]) > now:
                if lease["deployment_id"] == deployment_id:
                    return None  # alive and renewed by its owner meanwhile
                if _is_running(conn, lease["deployment_id"]):
                    return None
            values = {"owner": owner, "deployment_id": deployment_id, "expires_at": until}
            if lease is None:
                conn.execute(insert(deploy_leases).values(app=deployment.app, **values))
            else:
                conn.execute(
                    update(deploy_leases)
                    .where(deploy_leases.c.app == deployment.app)
                    .values(values)
                )
            return deployment

        try:
            return await self._write(run)
        except IntegrityError:
            return None

    async def hand_off(self, owner: str, now: datetime) -> int:
        """Expire every lease ``owner`` holds so another instance resumes its work at once."""

        def run(conn: Connection) -> int:
            result = conn.execute(
                update(deploy_leases).where(deploy_leases.c.owner == owner).values(expires_at=now)
            )
            return int(result.rowcount)

        return await self._write(run)

    # Reads.

    async def get(self, deployment_id: str) -> Deployment:
        return await self._read(lambda conn: _get(conn, deployment_id))

    async def running_of_app(self, app: str) -> Deployment | None:
        return await self._read(lambda conn: _running_of_app(conn, app))

    async def lease_of(self, app: str) -> dict[str, Any] | None:
        def run(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(select(deploy_leases).where(deploy_leases.c.app == app)).mappings()
            first = row.first()
            return dict(first) if first is not None else None

        return await self._read(run)

    async def list_deployments(
        self, app: str, limit: int, page_token: str = ""
    ) -> tuple[list[Deployment], str]:
        """Newest first; the token of the next page ('' on the last page)."""
        after = decode_page_token(page_token) if page_token else None

        def run(conn: Connection) -> list[Deployment]:
            query = select(deployments)
            if app:
                query = query.where(deployments.c.app == app)
            if after is not None:
                started, last_id = after
                query = query.where(
                    or_(
                        deployments.c.started < started,
                        and_(deployments.c.started == started, deployments.c.id < last_id),
                    )
                )
            query = query.order_by(deployments.c.started.desc(), deployments.c.id.desc())
            rows = conn.execute(query.limit(limit + 1)).mappings()
            return [_deployment(row) for row in rows]

        found = await self._read(run)
        if len(found) <= limit:
            return found, ""
        page = found[:limit]
        return page, encode_page_token(page[-1])

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
            return [_event(row) for row in conn.execute(query).mappings()]

        return await self._read(run)

    async def status_messages(self, deployment_id: str) -> set[str]:
        """The messages of the deployment's app status events so far."""

        def run(conn: Connection) -> set[str]:
            query = select(deployment_events.c.message).where(
                deployment_events.c.deployment_id == deployment_id,
                deployment_events.c.reason == STATUS_CHANGE,
            )
            return {str(message) for message in conn.execute(query).scalars()}

        return await self._read(run)


def encode_page_token(last: Deployment) -> str:
    raw = f"{as_utc(last.started).isoformat()}|{last.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        started, last_id = raw.split("|", 1)
        return as_utc(datetime.fromisoformat(started)), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("invalid page token") from None


def _lease_for_update(conn: Connection, app: str) -> RowMapping | None:
    query = select(deploy_leases).where(deploy_leases.c.app == app).with_for_update()
    return conn.execute(query).mappings().first()


def _running_of_app(conn: Connection, app: str) -> Deployment | None:
    query = (
        select(deployments)
        .where(deployments.c.app == app, deployments.c.outcome == RUNNING)
        .order_by(deployments.c.started)
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return _deployment(row) if row is not None else None


def _is_running(conn: Connection, deployment_id: str) -> bool:
    query = select(deployments.c.outcome).where(deployments.c.id == deployment_id)
    return conn.execute(query).scalar() == RUNNING


def _get(conn: Connection, deployment_id: str) -> Deployment:
    row = conn.execute(select(deployments).where(deployments.c.id == deployment_id)).mappings()
    first = row.first()
    if first is None:
        raise NotFound(f"deployment not found: {deployment_id}")
    return _deployment(first)


def _row(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "app": d.app,
        "release_id": d.release_id,
        "previous_release_id": d.previous_release_id,
        "actor": d.actor,
        "kind": d.kind.value,
        "rollback_of": d.rollback_of,
        "started": d.started,
        "ended": d.ended,
        "outcome": d.outcome.value,
        "reason": d.reason,
        "phase": d.phase.value,
        "timeout_seconds": d.timeout_seconds,
        "last_seq": d.last_seq,
        "cancelled_by": d.cancelled_by,
    }


def _deployment(row: RowMapping) -> Deployment:
    return Deployment(
        id=row["id"],
        app=row["app"],
        release_id=row["release_id"],
        previous_release_id=row["previous_release_id"],
        actor=row["actor"],
        kind=Kind(row["kind"]),
        rollback_of=row["rollback_of"],
        started=as_utc(row["started"]),
        ended=as_utc(row["ended"]) if row["ended"] is not None else None,
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        phase=Phase(row["phase"]),
        timeout_seconds=int(row["timeout_seconds"]),
        last_seq=int(row["last_seq"]),
        cancelled_by=row["cancelled_by"],
    )


def _event_row(e: DeploymentEvent) -> dict[str, Any]:
    return {
        "deployment_id": e.deployment_id,
        "seq": e.seq,
        "time": e.time,
        "source": e.source,
        "reason": e.reason,
        "message": e.message,
    }


def _event(row: RowMapping) -> DeploymentEvent:
    return DeploymentEvent(
        deployment_id=row["deployment_id"],
        seq=int(row["seq"]),
        time=as_utc(row["time"]),
        source=row["source"],
        reason=row["reason"],
        message=row["message"],
    )


def group_by_deployment(events: Iterable[DeploymentEvent]) -> dict[str, list[DeploymentEvent]]:
    groups: dict[str, list[DeploymentEvent]] = {}
    for event in events:
        groups.setdefault(event.deployment_id, []).append(event)
    return groups
