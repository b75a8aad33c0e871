"""The SQL repository: domain objects in and out, SQLAlchemy inside."""

from __future__ import annotations

from datetime import datetime

from relman_common.clock import as_utc
from relman_common.errors import AlreadyExists
from relman_common.secretbox import SecretBox
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relman_release.domain.model import App, Build, Page, Release
from relman_release.domain.tokens import ADMIN, ApiToken
from relman_release.store.codec import decode_env, decode_images, encode_env, encode_images
from relman_release.store.tables import ApiTokenRow, AppRow, BuildRow, ReleaseRow


class SqlRepository:
    """``box`` seals every env written and opens every env read (see store.codec)."""

    def __init__(self, session: Session, box: SecretBox) -> None:
        self.session = session
        self._box = box
        self._app_ids: dict[str, int] = {}

    # --- apps ---

    def _app_row(self, name: str, lock: bool = False) -> AppRow | None:
        query = select(AppRow).where(AppRow.name == name)
        if lock:
            query = query.with_for_update()
        row = self.session.scalars(query).one_or_none()
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

    def list_apps(self) -> list[App]:
        return [_app(row) for row in self.session.scalars(select(AppRow).order_by(AppRow.name))]

    def add_app(self, app: App) -> None:
        row = AppRow(
            name=app.name,
            created=app.created,
            actor=app.actor,
            active_release_id=app.active_release_id,
            latest_release_id=app.latest_release_id,
        )
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            raise AlreadyExists(f"app already exists: {app.name}") from None
        self._app_ids[app.name] = row.id

    def delete_app(self, name: str) -> None:
        app_id = self._app_id(name)
        self.session.execute(delete(ReleaseRow).where(ReleaseRow.app_id == app_id))
        self.session.execute(delete(BuildRow).where(BuildRow.app_id == app_id))
        self.session.execute(delete(AppRow).where(AppRow.id == app_id))
        self.session.expunge_all()
        del self._app_ids[name]

    def set_active_release(self, app: str, release_id: str) -> None:
        self.session.execute(
            update(AppRow)
            .where(AppRow.id == self._app_id(app))
            .values(active_release_id=release_id)
        )

    # --- builds ---

    def add_build(self, build: Build) -> None:
        self.session.add(
            BuildRow(
                id=build.id,
                app_id=self._app_id(build.app),
                manifest=build.manifest,
                images=encode_images(build.images),
                description=build.description,
                git_sha=build.git_sha,
                status=build.status,
                created=build.created,
                started=build.started,
                ended=build.ended,
                actor=build.actor,
            )
        )
        self.session.flush()

    def find_build(self, build_id: str) -> Build | None:
        found = self.session.execute(
            select(BuildRow, AppRow.name).join(AppRow).where(BuildRow.id == build_id)
        ).one_or_none()
        return _build(found[0], found[1]) if found is not None else None

    def list_builds(self, app: str, limit: int, before: int | None) -> Page[Build]:
        query = select(BuildRow).where(BuildRow.app_id == self._app_id(app))
        if before is not None:
            query = query.where(BuildRow.seq < before)
        rows = list(self.session.scalars(query.order_by(BuildRow.seq.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[_build(row, app) for row in rows],
            next_cursor=rows[-1].seq if more else None,
        )

    # --- releases ---

    def add_release(self, release: Release) -> None:
        app_id = self._app_id(release.app)
        self.session.add(
            ReleaseRow(
                id=release.id,
                app_id=app_id,
                build_id=release.build_id,
                env=encode_env(release.env, self._box, release.id),
                description=release.description,
                created=release.created,
                actor=release.actor,
                last_deployment_id=release.last_deployment_id,
                last_deployment_outcome=release.last_deployment_outcome,
            )
        )
        self.session.flush()
        self.session.execute(
            update(AppRow).where(AppRow.id == app_id).values(latest_release_id=release.id)
        )

    def find_release(self, release_id: str) -> Release | None:
        found = self.session.execute(
            select(ReleaseRow, AppRow.name).join(AppRow).where(ReleaseRow.id == release_id)
        ).one_or_none()
        if found is None:
            return None
        row: ReleaseRow = found[0]
        return _release(row, found[1], env=decode_env(row.env, self._box, row.id))

    def list_releases(self, app: str, limit: int, before: int | None) -> Page[Release]:
        columns = (
            ReleaseRow.seq,
            ReleaseRow.id,
            ReleaseRow.build_id,
            ReleaseRow.description,
            ReleaseRow.created,
            ReleaseRow.actor,
            ReleaseRow.last_deployment_id,
            ReleaseRow.last_deployment_outcome,
        )
        query = select(*columns).where(ReleaseRow.app_id == self._app_id(app))
        if before is not None:
            query = query.where(ReleaseRow.seq < before)
        rows = self.session.execute(query.order_by(ReleaseRow.seq.desc()).limit(limit + 1)).all()
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
        self.session.execute(
            update(ReleaseRow)
            .where(ReleaseRow.id == release_id)
            .values(last_deployment_id=deployment_id, last_deployment_outcome=outcome)
        )

    # --- API tokens ---

    def count_tokens(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(ApiTokenRow)) or 0)

    def add_token(self, token: ApiToken, token_hash: str) -> None:
        self.session.add(
            ApiTokenRow(
                name=token.name,
                kind=token.kind,
                token_hash=token_hash,
                created=token.created,
                revoked=token.revoked,
                actor=token.actor,
            )
        )
        try:
            self.session.flush()
        except IntegrityError:
            raise AlreadyExists(f"token already exists: {token.name}") from None

    def get_token(self, name: str) -> ApiToken | None:
        row = self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.name == name)
        ).one_or_none()
        return _token(row) if row is not None else None

    def find_token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)
        ).one_or_none()
        return _token(row) if row is not None else None

    def list_tokens(self) -> list[ApiToken]:
        rows = self.session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.seq))
        return [_token(row) for row in rows]

    def lock_live_admins(self) -> list[str]:
        query = (
            select(ApiTokenRow.name)
            .where(ApiTokenRow.kind == ADMIN, ApiTokenRow.revoked.is_(None))
            .order_by(ApiTokenRow.seq)
            .with_for_update()
        )
        return list(self.session.scalars(query))

    def revoke_token(self, name: str, when: datetime) -> None:
        self.session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.name == name, ApiTokenRow.revoked.is_(None))
            .values(revoked=when)
        )


def _app(row: AppRow) -> App:
    return App(
        name=row.name,
        created=as_utc(row.created),
        actor=row.actor,
        active_release_id=row.active_release_id,
        latest_release_id=row.latest_release_id,
    )


def _build(row: BuildRow, app: str) -> Build:
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


def _release(row: ReleaseRow, app: str, env: dict[str, str]) -> Release:
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


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        name=row.name,
        kind=row.kind,
        created=as_utc(row.created),
        actor=row.actor,
        revoked=as_utc(row.revoked) if row.revoked is not None else None,
    )
