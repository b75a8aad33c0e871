"""The SQL repository: domain objects in and out, SQLAlchemy Core inside.

Every statement is built once, at import, with named bind parameters: executing a prebuilt
statement finds its compiled form in SQLAlchemy's cache without rebuilding it, and Core rows
skip the ORM's identity map and unit-of-work bookkeeping. The hot calls (create a release,
list a page, read an app) spend their time in the database, not in statement building.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from relman_common.clock import as_utc
from relman_common.errors import AlreadyExists
from relman_common.secretbox import SecretBox
from sqlalchemy import Connection, Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from relman_release.domain.model import App, Build, Page, Release
from relman_release.domain.tokens import ADMIN, ApiToken
from relman_release.store.codec import decode_env, decode_images, encode_env, encode_images
from relman_release.store.tables import ApiTokenRow, AppRow, BuildRow, ReleaseRow

apps = cast(Table, AppRow.__table__)
builds = cast(Table, BuildRow.__table__)
releases = cast(Table, ReleaseRow.__table__)
api_tokens = cast(Table, ApiTokenRow.__table__)

# --- statements ------------------------------------------------------------------------------
# Bind parameter names start with "p_": SQLAlchemy reserves column names for SET/VALUES.

_GET_APP = select(apps).where(apps.c.name == bindparam("p_name"))
_LOCK_APP = _GET_APP.with_for_update()
# The app, locked, with the app id of a build (NULL when there is no such build): one round
# trip instead of two when a release names its build.
_LOCK_APP_WITH_BUILD = (
    select(
        apps,
        select(builds.c.app_id)
        .where(builds.c.id == bindparam("p_build_id"))
        .scalar_subquery()
        .label("build_app_id"),
    )
    .where(apps.c.name == bindparam("p_name"))
    .with_for_update(of=apps)
)
_LIST_APPS = select(apps).order_by(apps.c.name)
_INSERT_APP = insert(apps)
_DELETE_APP_RELEASES = delete(releases).where(releases.c.app_id == bindparam("p_app_id"))
_DELETE_APP_BUILDS = delete(builds).where(builds.c.app_id == bindparam("p_app_id"))
_DELETE_APP = delete(apps).where(apps.c.id == bindparam("p_app_id"))
_SET_ACTIVE = (
    update(apps)
    .where(apps.c.id == bindparam("p_app_id"))
    .values(active_release_id=bindparam("p_release_id"))
)
_SET_LATEST = (
    update(apps)
    .where(apps.c.id == bindparam("p_app_id"))
    .values(latest_release_id=bindparam("p_release_id"))
)

_INSERT_BUILD = insert(builds)
_FIND_BUILD = (
    select(builds, apps.c.name.label("app_name"))
    .join_from(builds, apps, builds.c.app_id == apps.c.id)
    .where(builds.c.id == bindparam("p_id"))
)
_LIST_BUILDS = select(builds).where(builds.c.app_id == bindparam("p_app_id"))
_LIST_BUILDS_BEFORE = _LIST_BUILDS.where(builds.c.seq < bindparam("p_before"))
_LIST_BUILDS, _LIST_BUILDS_BEFORE = (
    q.order_by(builds.c.seq.desc()).limit(bindparam("p_limit"))
    for q in (_LIST_BUILDS, _LIST_BUILDS_BEFORE)
)

_INSERT_RELEASE = insert(releases)
_FIND_RELEASE = (
    select(releases, apps.c.name.label("app_name"))
    .join_from(releases, apps, releases.c.app_id == apps.c.id)
    .where(releases.c.id == bindparam("p_id"))
)
_LISTED_RELEASE_COLUMNS = (
    releases.c.seq,
    releases.c.id,
    releases.c.build_id,
    releases.c.description,
    releases.c.created,
    releases.c.actor,
    releases.c.last_deployment_id,
    releases.c.last_deployment_outcome,
)
_LIST_RELEASES = select(*_LISTED_RELEASE_COLUMNS).where(releases.c.app_id == bindparam("p_app_id"))
_LIST_RELEASES_BEFORE = _LIST_RELEASES.where(releases.c.seq < bindparam("p_before"))
_LIST_RELEASES, _LIST_RELEASES_BEFORE = (
    q.order_by(releases.c.seq.desc()).limit(bindparam("p_limit"))
    for q in (_LIST_RELEASES, _LIST_RELEASES_BEFORE)
)
_RECORD_OUTCOME = (
    update(releases)
    .where(releases.c.id == bindparam("p_id"))
    .values(
        last_deployment_id=bindparam("p_deployment_id"),
        last_deployment_outcome=bindparam("p_outcome"),
    )
)

_COUNT_TOKENS = select(func.count()).select_from(api_tokens)
_INSERT_TOKEN = insert(api_tokens)
_GET_TOKEN = select(api_tokens).where(api_tokens.c.name == bindparam("p_name"))
_TOKEN_BY_HASH = select(api_tokens).where(api_tokens.c.token_hash == bindparam("p_hash"))
_LIST_TOKENS = select(api_tokens).order_by(api_tokens.c.seq)
_LOCK_LIVE_ADMINS = (
    select(api_tokens.c.name)
    .where(api_tokens.c.kind == ADMIN, api_tokens.c.revoked.is_(None))
    .order_by(api_tokens.c.seq)
    .with_for_update()
)
_REVOKE_TOKEN = (
    update(api_tokens)
    .where(api_tokens.c.name == bindparam("p_name"), api_tokens.c.revoked.is_(None))
    .values(revoked=bindparam("p_when"))
)


class SqlRepository:
    """Works inside the transaction of ``conn``. ``box`` seals every env written and opens
    every env read (see store.codec)."""

    def __init__(self, conn: Connection, box: SecretBox) -> None:
        self.conn = conn
        self._box = box
        self._app_ids: dict[str, int] = {}

    # --- apps ---

    def _app_row(self, name: str, lock: bool = False) -> Row[Any] | None:
        row = self.conn.execute(_LOCK_APP if lock else _GET_APP, {"p_name": name}).one_or_none()
        if row is not None:
            self._app_ids[name] = row.id
        return row

    def _app_id(self, name: str) -> int:
        if name not in self._app_ids and self._app_row(name) is None:
            raise LookupError(f"app {name} vanished inside a transaction")
        return self._app_ids[name]

    def get_app(self, name: str) -> App | None:
        row = self._app_row(name)
        return _app(row) if row is not None else None

    def lock_app(self, name: str) -> App | None:
        row = self._app_row(name, lock=True)
        return _app(row) if row is not None else None

    def lock_app_with_build(self, name: str, build_id: str) -> tuple[App | None, bool | None]:
        row = self.conn.execute(
            _LOCK_APP_WITH_BUILD, {"p_name": name, "p_build_id": build_id}
        ).one_or_none()
        if row is None:
            return None, None
        self._app_ids[name] = row.id
        holds = None if row.build_app_id is None else row.build_app_id == row.id
        return _app(row), holds

    def list_apps(self) -> list[App]:
        return [_app(row) for row in self.conn.execute(_LIST_APPS)]

    def add_app(self, app: App) -> None:
        values = {
            "name": app.name,
            "created": app.created,
            "actor": app.actor,
            "active_release_id": app.active_release_id,
            "latest_release_id": app.latest_release_id,
        }
        try:
            result = self.conn.execute(_INSERT_APP, values)
        except IntegrityError:
            raise AlreadyExists(f"app already exists: {app.name}") from None
        key = result.inserted_primary_key
        assert key is not None
        self._app_ids[app.name] = int(key[0])

    def delete_app(self, name: str) -> None:
        params = {"p_app_id": self._app_id(name)}
        self.conn.execute(_DELETE_APP_RELEASES, params)
        self.conn.execute(_DELETE_APP_BUILDS, params)
        self.conn.execute(_DELETE_APP, params)
        del self._app_ids[name]

    def set_active_release(self, app: str, release_id: str) -> None:
        self.conn.execute(_SET_ACTIVE, {"p_app_id": self._app_id(app), "p_release_id": release_id})

    # --- builds ---

    def add_build(self, build: Build) -> None:
        self.conn.execute(
            _INSERT_BUILD,
            {
                "id": build.id,
                "app_id": self._app_id(build.app),
                "manifest": build.manifest,
                "images": encode_images(build.images),
                "description": build.description,
                "git_sha": build.git_sha,
                "status": build.status,
                "created": build.created,
                "started": build.started,
                "ended": build.ended,
                "actor": build.actor,
            },
        )

    def find_build(self, build_id: str) -> Build | None:
        row = self.conn.execute(_FIND_BUILD, {"p_id": build_id}).one_or_none()
        return _build(row, row.app_name) if row is not None else None

    def list_builds(self, app: str, limit: int, before: int | None) -> Page[Build]:
        params: dict[str, Any] = {"p_app_id": self._app_id(app), "p_limit": limit + 1}
        query = _LIST_BUILDS
        if before is not None:
            query = _LIST_BUILDS_BEFORE
            params["p_before"] = before
        rows = self.conn.execute(query, params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[_build(row, app) for row in rows],
            next_cursor=rows[-1].seq if more else None,
        )

    # --- releases ---

    def add_release(self, release: Release) -> None:
        app_id = self._app_id(release.app)
        self.conn.execute(
            _INSERT_RELEASE,
            {
                "id": release.id,
                "app_id": app_id,
                "build_id": release.build_id,
                "env": encode_env(release.env, self._box, release.id),
                "description": release.description,
                "created": release.created,
                "actor": release.actor,
                "last_deployment_id": release.last_deployment_id,
                "last_deployment_outcome": release.last_deployment_outcome,
            },
        )
        self.conn.execute(_SET_LATEST, {"p_app_id": app_id, "p_release_id": release.id})

    def find_release(self, release_id: str) -> Release | None:
        row = self.conn.execute(_FIND_RELEASE, {"p_id": release_id}).one_or_none()
        if row is None:
            return None
        return _release(row, row.app_name, env=decode_env(row.env, self._box, row.id))

    def list_releases(self, app: str, limit: int, before: int | None) -> Page[Release]:
        params: dict[str, Any] = {"p_app_id": self._app_id(app), "p_limit": limit + 1}
        query = _LIST_RELEASES
        if before is not None:
            query = _LIST_RELEASES_BEFORE
            params["p_before"] = before
        rows = self.conn.execute(query, params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            Release(
                id=row.id,
                app=app,
                build_id=row.build_id,
                env={},
                description=row.description,
                created=as_utc(row.created),
                actor=row.actor,
                last_deployment_id=row.last_deployment_id,
                last_deployment_outcome=row.last_deployment_outcome,
            )
            for row in rows
        ]
        return Page(items=items, next_cursor=rows[-1].seq if more else None)

    def record_outcome(self, release_id: str, deployment_id: str, outcome: str) -> None:
        self.conn.execute(
            _RECORD_OUTCOME,
            {"p_id": release_id, "p_deployment_id": deployment_id, "p_outcome": outcome},
        )

    # --- API tokens ---

    def count_tokens(self) -> int:
        return int(self.conn.execute(_COUNT_TOKENS).scalar() or 0)

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
            self.conn.execute(_INSERT_TOKEN, values)
        except IntegrityError:
            raise AlreadyExists(f"token already exists: {token.name}") from None

    def get_token(self, name: str) -> ApiToken | None:
        row = self.conn.execute(_GET_TOKEN, {"p_name": name}).one_or_none()
        return _token(row) if row is not None else None

    def find_token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self.conn.execute(_TOKEN_BY_HASH, {"p_hash": token_hash}).one_or_none()
        return _token(row) if row is not None else None

    def list_tokens(self) -> list[ApiToken]:
        return [_token(row) for row in self.conn.execute(_LIST_TOKENS)]

    def lock_live_admins(self) -> list[str]:
        return [str(name) for name in self.conn.execute(_LOCK_LIVE_ADMINS).scalars()]

    def revoke_token(self, name: str, when: datetime) -> None:
        self.conn.execute(_REVOKE_TOKEN, {"p_name": name, "p_when": when})


def _app(row: Row[Any]) -> App:
    return App(
        name=row.name,
        created=as_utc(row.created),
        actor=row.actor,
        active_release_id=row.active_release_id,
        latest_release_id=row.latest_release_id,
    )


def _build(row: Row[Any], app: str) -> Build:
    return Build(
        id=row.id,
        app=app,
        manifest=row.manifest,
        images=decode_images(row.images),
        description=row.description,
        git_sha=row.git_sha,
        status=row.status,
        created=as_utc(row.created),
        started=as_utc(row.started) if row.started is not None else None,
        ended=as_utc(row.ended) if row.ended is not None else None,
        actor=row.actor,
    )


def _release(row: Row[Any], app: str, env: dict[str, str]) -> Release:
    return Release(
        id=row.id,
        app=app,
        build_id=row.build_id,
        env=env,
        description=row.description,
        created=as_utc(row.created),
        actor=row.actor,
        last_deployment_id=row.last_deployment_id,
        last_deployment_outcome=row.last_deployment_outcome,
    )


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        name=row.name,
        kind=row.kind,
        created=as_utc(row.created),
        actor=row.actor,
        revoked=as_utc(row.revoked) if row.revoked is not None else None,
    )
