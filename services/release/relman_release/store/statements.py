"""The Release service's SQL statements, each built once at import with named bind
parameters (``p_...``): executing a prebuilt statement finds its compiled form in
SQLAlchemy's cache without rebuilding it."""

from __future__ import annotations

from typing import Any, cast

from relman_common.lifecycle import BuildStatus
from sqlalchemy import Table, Update, bindparam, delete, func, insert, or_, select, update

from relman_release.domain.tokens import ADMIN
from relman_release.store.tables import (
    ApiTokenRow,
    AppRow,
    BuildLogRow,
    BuildRow,
    GarbageRow,
    PrunedRow,
    ReleaseRow,
)

apps = cast(Table, AppRow.__table__)
builds = cast(Table, BuildRow.__table__)
releases = cast(Table, ReleaseRow.__table__)
build_logs = cast(Table, BuildLogRow.__table__)
api_tokens = cast(Table, ApiTokenRow.__table__)
pruned = cast(Table, PrunedRow.__table__)
garbage = cast(Table, GarbageRow.__table__)

# Bind parameter names start with "p_": SQLAlchemy reserves column names for SET/VALUES.


def _set(table: Table, id_param: str, **columns: str) -> Update:
    """``UPDATE table SET column = :param, ... WHERE id = :id_param``; ``columns`` maps each
    column to its bind parameter."""
    values: dict[str, Any] = {column: bindparam(param) for column, param in columns.items()}
    return update(table).where(table.c.id == bindparam(id_param)).values(values)


GET_APP = select(apps).where(apps.c.name == bindparam("p_name"))
LOCK_APP = GET_APP.with_for_update()
# The app, locked, with the app id of a build (NULL when there is no such build): one round
# trip instead of two when a release names its build.
LOCK_APP_WITH_BUILD = (
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
LIST_APPS = select(apps).order_by(apps.c.name)
INSERT_APP = insert(apps)
DELETE_APP_RELEASES = delete(releases).where(releases.c.app_id == bindparam("p_app_id"))
DELETE_APP_BUILD_LOGS = delete(build_logs).where(
    build_logs.c.build_id.in_(select(builds.c.id).where(builds.c.app_id == bindparam("p_app_id")))
)
DELETE_APP_BUILDS = delete(builds).where(builds.c.app_id == bindparam("p_app_id"))
DELETE_APP_PRUNED = delete(pruned).where(pruned.c.app_id == bindparam("p_app_id"))
DELETE_APP = delete(apps).where(apps.c.id == bindparam("p_app_id"))
SET_ACTIVE = _set(
    apps,
    "p_app_id",
    active_release_id="p_release_id",
    previous_active_release_id="p_previous_id",
)
SET_CURRENT_DEPLOYMENT = _set(
    apps,
    "p_app_id",
    current_deployment_id="p_deployment_id",
    current_deployment_started="p_started",
)
SET_LATEST = _set(apps, "p_app_id", latest_release_id="p_release_id")
SET_LOCK = _set(apps, "p_app_id", locked_by="p_by", locked_at="p_at", lock_message="p_message")

INSERT_BUILD = insert(builds)
FIND_BUILD = (
    select(builds, apps.c.name.label("app_name"))
    .join_from(builds, apps, builds.c.app_id == apps.c.id)
    .where(builds.c.id == bindparam("p_id"))
)
LIST_BUILDS = select(builds).where(builds.c.app_id == bindparam("p_app_id"))
LIST_BUILDS_BEFORE = LIST_BUILDS.where(builds.c.seq < bindparam("p_before"))
LIST_BUILDS, LIST_BUILDS_BEFORE = (
    q.order_by(builds.c.seq.desc()).limit(bindparam("p_limit"))
    for q in (LIST_BUILDS, LIST_BUILDS_BEFORE)
)

# Builds from source: the runner's statements. Each names the runner, so that a build is only
# ever moved on by the instance that runs it (another instance's build is left alone).
_UNFINISHED = builds.c.status.in_([BuildStatus.CREATED.value, BuildStatus.RUNNING.value])
_BUILD_OF_RUNNER = (builds.c.id == bindparam("p_id"), builds.c.runner == bindparam("p_runner"))
START_BUILD = (
    update(builds)
    .where(*_BUILD_OF_RUNNER, builds.c.status == BuildStatus.CREATED.value)
    .values(
        status=BuildStatus.RUNNING.value, started=bindparam("p_when"), heartbeat=bindparam("p_when")
    )
)
FINISH_BUILD = (
    update(builds)
    .where(*_BUILD_OF_RUNNER, builds.c.status == BuildStatus.RUNNING.value)
    .values(
        status=bindparam("p_status"),
        ended=bindparam("p_when"),
        images=bindparam("p_images"),
        reason=bindparam("p_reason"),
        release_id=bindparam("p_release_id"),
    )
)
RENEW_BUILDS = (
    update(builds)
    .where(
        builds.c.runner == bindparam("p_runner"),
        builds.c.id.in_(bindparam("p_ids", expanding=True)),
        _UNFINISHED,
    )
    .values(heartbeat=bindparam("p_when"))
)
_INTERRUPT = update(builds).values(
    status=BuildStatus.FAILED.value, reason=bindparam("p_reason"), ended=bindparam("p_when")
)
INTERRUPT_RUNNERS_BUILDS = _INTERRUPT.where(
    builds.c.runner == bindparam("p_runner"), _UNFINISHED
).returning(builds.c.id)
INTERRUPT_STALE_BUILDS = _INTERRUPT.where(
    _UNFINISHED,
    or_(builds.c.heartbeat.is_(None), builds.c.heartbeat < bindparam("p_before")),
).returning(builds.c.id)
INSERT_LOG_LINES = insert(build_logs)
SET_LOG_LINES = (
    update(builds).where(builds.c.id == bindparam("p_id")).values(log_lines=bindparam("p_count"))
)
READ_LOG = (
    select(build_logs.c.seq, build_logs.c.time, build_logs.c.text)
    .where(build_logs.c.build_id == bindparam("p_id"), build_logs.c.seq > bindparam("p_after"))
    .order_by(build_logs.c.seq)
    .limit(bindparam("p_limit"))
)

INSERT_RELEASE = insert(releases)
FIND_RELEASE = (
    select(releases, apps.c.name.label("app_name"))
    .join_from(releases, apps, releases.c.app_id == apps.c.id)
    .where(releases.c.id == bindparam("p_id"))
)
LISTED_RELEASE_COLUMNS = (
    releases.c.seq,
    releases.c.id,
    releases.c.build_id,
    releases.c.description,
    releases.c.created,
    releases.c.actor,
    releases.c.last_deployment_id,
    releases.c.last_deployment_outcome,
    releases.c.pinned,
)
LIST_RELEASES = select(*LISTED_RELEASE_COLUMNS).where(releases.c.app_id == bindparam("p_app_id"))
LIST_RELEASES_BEFORE = LIST_RELEASES.where(releases.c.seq < bindparam("p_before"))
LIST_RELEASES, LIST_RELEASES_BEFORE = (
    q.order_by(releases.c.seq.desc()).limit(bindparam("p_limit"))
    for q in (LIST_RELEASES, LIST_RELEASES_BEFORE)
)
RECORD_OUTCOME = _set(
    releases, "p_id", last_deployment_id="p_deployment_id", last_deployment_outcome="p_outcome"
)

COUNT_TOKENS = select(func.count()).select_from(api_tokens)
INSERT_TOKEN = insert(api_tokens)
GET_TOKEN = select(api_tokens).where(api_tokens.c.name == bindparam("p_name"))
TOKEN_BY_HASH = select(api_tokens).where(api_tokens.c.token_hash == bindparam("p_hash"))
LIST_TOKENS = select(api_tokens).order_by(api_tokens.c.seq)
LOCK_LIVE_ADMINS = (
    select(api_tokens.c.name)
    .where(api_tokens.c.kind == ADMIN, api_tokens.c.revoked.is_(None))
    .order_by(api_tokens.c.seq)
    .with_for_update()
)
REVOKE_TOKEN = (
    update(api_tokens)
    .where(api_tokens.c.name == bindparam("p_name"), api_tokens.c.revoked.is_(None))
    .values(revoked=bindparam("p_when"))
)

# Retention (SPEC 9).
ALL_RELEASES = (
    select(*LISTED_RELEASE_COLUMNS)
    .where(releases.c.app_id == bindparam("p_app_id"))
    .order_by(releases.c.seq.desc())
)
COUNT_RELEASES = select(func.count()).where(releases.c.app_id == bindparam("p_app_id"))
BUILD_FACTS = select(
    builds.c.id, builds.c.status, builds.c.created, builds.c.source_sha256, builds.c.images
).where(builds.c.app_id == bindparam("p_app_id"))
_IDS: Any = bindparam("p_ids", expanding=True)
DELETE_RELEASES = delete(releases).where(releases.c.id.in_(_IDS))
DELETE_BUILD_LOGS = delete(build_logs).where(build_logs.c.build_id.in_(_IDS))
DELETE_BUILDS = delete(builds).where(builds.c.id.in_(_IDS))
INSERT_PRUNED = insert(pruned)
FIND_PRUNED = (
    select(pruned.c.id, pruned.c.pruned_at, pruned.c.actor, apps.c.name.label("app_name"))
    .join_from(pruned, apps, pruned.c.app_id == apps.c.id)
    .where(pruned.c.id == bindparam("p_id"))
)
SET_PINNED = _set(releases, "p_id", pinned="p_pinned")
INSERT_GARBAGE = insert(garbage)
LIST_GARBAGE = select(garbage).order_by(garbage.c.seq).limit(bindparam("p_limit"))
DELETE_GARBAGE = delete(garbage).where(garbage.c.seq.in_(bindparam("p_seqs", expanding=True)))
SOURCE_IN_USE = select(builds.c.id).where(builds.c.source_sha256 == bindparam("p_ref")).limit(1)
# A conservative match on the images column (JSON text): "_" in a name matches any character,
# which can only keep an image that could have gone.
IMAGE_IN_USE = select(builds.c.id).where(builds.c.images.contains(bindparam("p_ref"))).limit(1)
