"""Deployments: start one (taking its app's lease), cancel, finish, read and list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from relman_common.errors import FailedPrecondition
from relman_common.lifecycle import Outcome, Phase
from relman_common.request_ids import RequestKey
from relman_common.request_results import RequestResults
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relman_deployer.domain.diagnostics import Diagnostics
from relman_deployer.domain.guards import app_busy, check_cancellable, no_running_deployment
from relman_deployer.domain.model import Deployment, DeploymentEvent
from relman_deployer.store import base, rows
from relman_deployer.store import statements as q
from relman_deployer.store.base import StoreBase
from relman_deployer.store.diagnostics import replace_diagnostics
from relman_deployer.store.notify import notify_written
from relman_deployer.store.tables import deployments, request_results

# What a Promote, Rollback or Cancel with a client request id did: the deployment it started
# or cancelled (its id is the recorded payload).
RESULTS = RequestResults(request_results)
DEPLOYMENT_KIND = "deployment"


class DeploymentQueries(StoreBase):
    async def start(
        self,
        deployment: Deployment,
        owner: str,
        lease_until: datetime,
        request: RequestKey | None = None,
    ) -> None:
        """Insert ``deployment`` and take its app's lease, or raise the app-busy error; with
        ``request``, record that this request started it (DuplicateRequest when a concurrent
        call with the same id recorded its deployment first)."""

        def run(conn: Connection) -> None:
            lease = base.lease_for_update(conn, deployment.app)
            running = base.running_of_app(conn, deployment.app)
            if running is not None:
                raise app_busy(running)
            mine = {"owner": owner, "deployment_id": deployment.id, "expires_at": lease_until}
            if lease is None:
                conn.execute(q.INSERT_LEASE, {**mine, "app": deployment.app})
            else:  # left behind by a deployment that ended: take it over
                taken = {f"p_{key}": value for key, value in mine.items()}
                conn.execute(q.TAKE_LEASE, {**taken, "p_app": deployment.app})
            conn.execute(q.INSERT_DEPLOYMENT, rows.deployment_row(deployment))
            if request is not None:
                payload = deployment.id.encode()
                RESULTS.record(conn, request, DEPLOYMENT_KIND, payload, deployment.started)

        try:
            await self._write(run)
        except IntegrityError:
            # Another instance inserted the app's lease at the same moment and won.
            running = await self.running_of_app(deployment.app)
            if running is None:
                raise
            raise app_busy(running) from None

    async def finish(
        self,
        deployment_id: str,
        outcome: Outcome,
        reason: str,
        ended: datetime,
        final: Sequence[DeploymentEvent] = (),
        diagnostics: Diagnostics | None = None,
    ) -> Deployment:
        """Record the outcome with the ``final`` events that announce it (the last
        StatusChange), and its last ``diagnostics``, and free the app's lease, in one
        transaction: a deployment that wrote its last status line has ended, and one that did
        not is resumed before it."""

        def run(conn: Connection) -> Deployment:
            params: dict[str, Any] = {
                "p_id": deployment_id,
                "p_outcome": outcome.value,
                "p_reason": reason,
                "p_ended": ended,
                "p_phase": Phase.ENDED.value,
            }
            if final:
                conn.execute(q.INSERT_EVENTS, [rows.event_row(e) for e in final])
                conn.execute(q.END_AT_SEQ, {**params, "p_last_seq": final[-1].seq})
            else:
                conn.execute(q.END, params)
            if diagnostics is not None:
                replace_diagnostics(conn, deployment_id, diagnostics)
            conn.execute(q.FREE_LEASE, {"p_deployment_id": deployment_id})
            notify_written(conn, [deployment_id])
            return base.get(conn, deployment_id)

        try:
            return await self._write(run)
        except IntegrityError:
            # Another instance took the deployment over and wrote these seqs: nothing of this
            # end was written; the new owner ends it.
            raise FailedPrecondition(
                f"deployment {deployment_id}: its last events were written by another instance"
            ) from None

    async def recall_request(self, request: RequestKey) -> str | None:
        """The id of the deployment a call with ``request``'s id started or cancelled."""

        def run(conn: Connection) -> str | None:
            found = RESULTS.recall(conn, request)
            return found.payload.decode() if found is not None else None

        return await self._read(run)

    async def request_cancel(
        self,
        app: str,
        actor: str,
        request: RequestKey | None = None,
        when: datetime | None = None,
    ) -> Deployment:
        """Flag the app's running deployment for cancellation; its owner turns it around.
        With ``request``, record that this request cancelled it."""

        def run(conn: Connection) -> Deployment:
            running = base.running_of_app(conn, app)
            if running is None:
                raise no_running_deployment(app)
            check_cancellable(running)
            if not running.cancelled_by:
                conn.execute(
                    update(deployments)
                    .where(deployments.c.id == running.id)
                    .values(cancelled_by=actor or "anonymous")
                )
            if request is not None:
                at = when or running.started
                RESULTS.record(conn, request, DEPLOYMENT_KIND, running.id.encode(), at)
            return base.get(conn, running.id)

        return await self._write(run)

    async def get(self, deployment_id: str) -> Deployment:
        return await self._read(lambda conn: base.get(conn, deployment_id))

    async def running_of_app(self, app: str) -> Deployment | None:
        return await self._read(lambda conn: base.running_of_app(conn, app))

    async def list_deployments(
        self, app: str, limit: int, page_token: str = ""
    ) -> tuple[list[Deployment], str]:
        """Newest first; the token of the next page ('' on the last page)."""
        after = rows.decode_page_token(page_token) if page_token else None

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
            found = conn.execute(query.limit(limit + 1)).mappings()
            return [rows.deployment(row) for row in found]

        found = await self._read(run)
        if len(found) <= limit:
            return found, ""
        page = found[:limit]
        return page, rows.encode_page_token(page[-1])
