"""The SQL repository: domain objects in and out, SQLAlchemy Core inside.

Statements are prebuilt (:mod:`.statements`) and rows are turned into domain objects in
:mod:`.rows`: the hot calls (create a release, list a page, read an app) spend their time in
the database, not in statement building. Integrity errors become the project's errors here,
at the store's boundary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relman_common.errors import APP_EXISTS, TOKEN_EXISTS, AlreadyExists
from relman_common.lifecycle import Outcome
from relman_common.locks import AppLock
from relman_common.secretbox import SecretBox
from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from relman_release.domain.model import App, Build, Page, Release
from relman_release.domain.tokens import ApiToken
from relman_release.store import rows
from relman_release.store import statements as q
from relman_release.store.build_runs import BuildRuns
from relman_release.store.codec import decode_env, encode_env, encode_images
from relman_release.store.retention import Retention
from relman_release.store.webhooks import Webhooks


class SqlRepository(BuildRuns, Retention, Webhooks):
    """Works inside the transaction of ``conn``. ``box`` seals every env written and opens
    every env read (see store.codec)."""

    def __init__(self, conn: Connection, box: SecretBox) -> None:
        self.conn = conn
        self._box = box
        self._app_ids: dict[str, int] = {}

    # --- apps ---

    def _app_row(self, name: str, lock: bool = False) -> Row[Any] | None:
        row = self.conn.execute(q.LOCK_APP if lock else q.GET_APP, {"p_name": name}).one_or_none()
        if row is not None:
            self._app_ids[name] = row.id
        return row

    def _app_id(self, name: str) -> int:
        if name not in self._app_ids and self._app_row(name) is None:
            raise LookupError(f"app {name} vanished inside a transaction")
        return self._app_ids[name]

    def get_app(self, name: str) -> App | None:
        row = self._app_row(name)
        return rows.app(row) if row is not None else None

    def lock_app(self, name: str) -> App | None:
        row = self._app_row(name, lock=True)
        return rows.app(row) if row is not None else None

    def lock_app_with_build(self, name: str, build_id: str) -> tuple[App | None, bool | None]:
        row = self.conn.execute(
            q.LOCK_APP_WITH_BUILD, {"p_name": name, "p_build_id": build_id}
        ).one_or_none()
        if row is None:
            return None, None
        self._app_ids[name] = row.id
        holds = None if row.build_app_id is None else row.build_app_id == row.id
        return rows.app(row), holds

    def list_apps(self) -> list[App]:
        return [rows.app(row) for row in self.conn.execute(q.LIST_APPS)]

    def add_app(self, app: App) -> None:
        values = {
            "name": app.name,
            "created": app.created,
            "actor": app.actor,
            "active_release_id": app.active_release_id,
            "latest_release_id": app.latest_release_id,
        }
        try:
            result = self.conn.execute(q.INSERT_APP, values)
        except IntegrityError:
            raise AlreadyExists(
                f"app already exists: {app.name}", reason=APP_EXISTS, field="name"
            ) from None
        key = result.inserted_primary_key
        assert key is not None
        self._app_ids[app.name] = int(key[0])

    def delete_app(self, name: str) -> None:
        params = {"p_app_id": self._app_id(name)}
        self.conn.execute(q.DELETE_APP_RELEASES, params)
        self.conn.execute(q.DELETE_APP_BUILD_LOGS, params)
        self.conn.execute(q.DELETE_APP_BUILDS, params)
        self.conn.execute(q.DELETE_APP_PRUNED, params)
        for hook in self.webhooks_of(name):
            self.delete_webhook(hook.id)
        self.conn.execute(q.DELETE_APP, params)
        del self._app_ids[name]

    def set_active_release(self, app: str, release_id: str, previous_id: str = "") -> None:
        params = {"p_release_id": release_id, "p_previous_id": previous_id}
        self.conn.execute(q.SET_ACTIVE, {"p_app_id": self._app_id(app), **params})

    def set_current_deployment(self, app: str, deployment_id: str, started: datetime) -> None:
        params = {"p_app_id": self._app_id(app), "p_deployment_id": deployment_id}
        self.conn.execute(q.SET_CURRENT_DEPLOYMENT, {**params, "p_started": started})

    def set_lock(self, app: str, lock: AppLock | None) -> None:
        params: dict[str, Any] = {"p_by": "", "p_at": None, "p_message": ""}
        if lock is not None:
            params = {"p_by": lock.locked_by, "p_at": lock.locked_at, "p_message": lock.message}
        self.conn.execute(q.SET_LOCK, {"p_app_id": self._app_id(app), **params})

    # --- builds ---

    def add_build(self, build: Build, runner: str = "") -> None:
        """Stores the build; ``runner`` is the instance that will run it (none for a build
        imported complete), alive as of the build's creation."""
        self.conn.execute(
            q.INSERT_BUILD,
            {
                "id": build.id,
                "app_id": self._app_id(build.app),
                "manifest": build.manifest,
                "images": encode_images(build.images),
                "description": build.description,
                "git_sha": build.git_sha,
                "status": build.status.value,
                "created": build.created,
                "started": build.started,
                "ended": build.ended,
                "actor": build.actor,
                "release_id": build.release_id,
                "reason": build.reason,
                "source_sha256": build.source_sha256,
                "manifest_path": build.manifest_path,
                "no_cache": build.no_cache,
                "log_lines": build.log_lines,
                "runner": runner,
                "heartbeat": build.created if runner else None,
            },
        )

    def find_build(self, build_id: str) -> Build | None:
        row = self.conn.execute(q.FIND_BUILD, {"p_id": build_id}).one_or_none()
        return rows.build(row, row.app_name) if row is not None else None

    def list_builds(self, app: str, limit: int, before: int | None) -> Page[Build]:
        found, cursor = self._page(q.LIST_BUILDS, q.LIST_BUILDS_BEFORE, app, limit, before)
        return Page(items=[rows.build(row, app) for row in found], next_cursor=cursor)

    def _page(
        self, first: Any, after: Any, app: str, limit: int, before: int | None
    ) -> tuple[list[Row[Any]], int | None]:
        """Up to ``limit`` rows of ``app`` (``first``, or ``after`` below cursor ``before``)
        and the cursor of the next page (None at the end): keyset paging, one extra row."""
        params: dict[str, Any] = {"p_app_id": self._app_id(app), "p_limit": limit + 1}
        if before is not None:
            params["p_before"] = before
        found = list(self.conn.execute(first if before is None else after, params).all())
        more = len(found) > limit
        found = found[:limit]
        return found, found[-1].seq if more else None

    # --- releases ---

    def add_release(self, release: Release) -> None:
        app_id = self._app_id(release.app)
        self.conn.execute(
            q.INSERT_RELEASE,
            {
                "id": release.id,
                "app_id": app_id,
                "build_id": release.build_id,
                "env": encode_env(release.env, self._box, release.id),
                "description": release.description,
                "created": release.created,
                "actor": release.actor,
                "last_deployment_id": release.last_deployment_id,
                "last_deployment_outcome": rows.outcome_text(release.last_deployment_outcome),
            },
        )
        self.conn.execute(q.SET_LATEST, {"p_app_id": app_id, "p_release_id": release.id})

    def find_release(self, release_id: str) -> Release | None:
        row = self.conn.execute(q.FIND_RELEASE, {"p_id": release_id}).one_or_none()
        if row is None:
            return None
        return rows.release(row, row.app_name, env=decode_env(row.env, self._box, row.id))

    def list_releases(self, app: str, limit: int, before: int | None) -> Page[Release]:
        found, cursor = self._page(q.LIST_RELEASES, q.LIST_RELEASES_BEFORE, app, limit, before)
        return Page(items=[rows.release(row, app, env={}) for row in found], next_cursor=cursor)

    def record_outcome(self, release_id: str, deployment_id: str, outcome: Outcome) -> None:
        self.conn.execute(
            q.RECORD_OUTCOME,
            {"p_id": release_id, "p_deployment_id": deployment_id, "p_outcome": outcome.value},
        )

    # --- API tokens ---

    def count_tokens(self) -> int:
        return int(self.conn.execute(q.COUNT_TOKENS).scalar() or 0)

    def add_token(self, token: ApiToken, token_hash: str) -> None:
        values = {
            "name": token.name,
            "kind": token.kind,
            "token_hash": token_hash,
            "created": token.created,
            "revoked": token.revoked,
            "actor": token.actor,
        }
        try:
            self.conn.execute(q.INSERT_TOKEN, values)
        except IntegrityError:
            raise AlreadyExists(
                f"token already exists: {token.name}", reason=TOKEN_EXISTS, field="name"
            ) from None

    def get_token(self, name: str) -> ApiToken | None:
        row = self.conn.execute(q.GET_TOKEN, {"p_name": name}).one_or_none()
        return rows.token(row) if row is not None else None

    def find_token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self.conn.execute(q.TOKEN_BY_HASH, {"p_hash": token_hash}).one_or_none()
        return rows.token(row) if row is not None else None

    def list_tokens(self) -> list[ApiToken]:
        return [rows.token(row) for row in self.conn.execute(q.LIST_TOKENS)]

    def lock_live_admins(self) -> list[str]:
        return [str(name) for name in self.conn.execute(q.LOCK_LIVE_ADMINS).scalars()]

    def revoke_token(self, name: str, when: datetime) -> None:
        self.conn.execute(q.REVOKE_TOKEN, {"p_name": name, "p_when": when})
