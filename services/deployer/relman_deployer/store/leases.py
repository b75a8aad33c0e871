"""Leases: which Deployer instance runs which deployment, renewed while it works, taken over
when its owner is gone.

A row per app in ``deploy_leases`` says which instance (``owner``) runs which deployment until
``expires_at``. It is taken in the same write transaction that inserts the deployment, so two
promotions of one app can never both start; on PostgreSQL the lease row is locked ``FOR
UPDATE`` and a concurrent insert fails on the primary key, on SQLite the write transaction
holds the database's write lock from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from relman_common.clock import as_utc
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.model import Deployment
from relman_deployer.store import base, rows
from relman_deployer.store.base import RUNNING, StoreBase
from relman_deployer.store.tables import deploy_leases, deployments


class LeaseQueries(StoreBase):
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
            # Only the leases of deployments still running here: one whose run stopped without
            # ending (its task died) must expire, so that it is resumed.
            conn.execute(
                update(deploy_leases)
                .where(deploy_leases.c.owner == owner, deploy_leases.c.deployment_id.in_(ids))
                .values(expires_at=until)
            )
            query = (
                select(deployments.c.id, deployments.c.cancelled_by)
                .join(deploy_leases, deploy_leases.c.deployment_id == deployments.c.id)
                .where(deploy_leases.c.owner == owner, deployments.c.id.in_(ids))
            )
            return {row.id: row.cancelled_by for row in conn.execute(query)}

        return await self._write(run)

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
            return [rows.deployment(row) for row in conn.execute(query).mappings()]

        return await self._read(run)

    async def claim(
        self, deployment_id: str, owner: str, now: datetime, until: datetime
    ) -> Deployment | None:
        """Take the lease of a running deployment whose lease expired; None if someone else has.

        A running deployment whose app's lease is held by a *different* deployment cannot
        happen through :meth:`start`; if it is found anyway, it is claimed too.
        """

        def run(conn: Connection) -> Deployment | None:
            deployment = base.get(conn, deployment_id)
            lease = base.lease_for_update(conn, deployment.app)
            if not deployment.running:
                return None
            if lease is not None and as_utc(lease["expires_at"]) > now:
                if lease["deployment_id"] == deployment_id:
                    return None  # alive and renewed by its owner meanwhile
                if base.is_running(conn, lease["deployment_id"]):
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

    async def lease_of(self, app: str) -> dict[str, Any] | None:
        def run(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(select(deploy_leases).where(deploy_leases.c.app == app)).mappings()
            first = row.first()
            return dict(first) if first is not None else None

        return await self._read(run)
