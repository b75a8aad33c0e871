"""The store's part of retention: read what a prune decides on, remove what it decided,
remember pruned ids, and the garbage list of files to delete after the commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from relman_common.clock import as_utc
from relman_common.lifecycle import BuildStatus
from sqlalchemy import Connection

from relman_release.domain.model import Release
from relman_release.domain.retention import BuildFacts
from relman_release.store import rows
from relman_release.store import statements as q
from relman_release.store.codec import decode_images


class Retention:
    """Mixed into the SQL repository: works inside the transaction of ``conn``."""

    conn: Connection
    _app_id: Callable[[str], int]

    def all_releases(self, app: str) -> list[Release]:
        found = self.conn.execute(q.ALL_RELEASES, {"p_app_id": self._app_id(app)})
        return [rows.release(row, app, env={}) for row in found]

    def count_releases(self, app: str) -> int:
        return int(
            self.conn.execute(q.COUNT_RELEASES, {"p_app_id": self._app_id(app)}).scalar() or 0
        )

    def build_facts(self, app: str) -> list[BuildFacts]:
        found = self.conn.execute(q.BUILD_FACTS, {"p_app_id": self._app_id(app)})
        return [
            BuildFacts(
                row.id,
                BuildStatus(row.status),
                as_utc(row.created),
                row.source_sha256,
                decode_images(row.images),
            )
            for row in found
        ]

    def prune(
        self,
        app: str,
        release_ids: Sequence[str],
        build_ids: Sequence[str],
        garbage: Sequence[tuple[str, str]],
        when: datetime,
        actor: str,
    ) -> None:
        app_id = self._app_id(app)
        if release_ids:
            self.conn.execute(q.DELETE_RELEASES, {"p_ids": list(release_ids)})
        if build_ids:
            self.conn.execute(q.DELETE_BUILD_LOGS, {"p_ids": list(build_ids)})
            self.conn.execute(q.DELETE_BUILDS, {"p_ids": list(build_ids)})
        marks = [
            {"id": each, "app_id": app_id, "pruned_at": when, "actor": actor}
            for each in (*release_ids, *build_ids)
        ]
        if marks:
            self.conn.execute(q.INSERT_PRUNED, marks)
        if garbage:
            self.conn.execute(
                q.INSERT_GARBAGE,
                [{"kind": kind, "ref": ref, "created": when} for kind, ref in garbage],
            )

    def find_pruned(self, object_id: str) -> tuple[str, datetime] | None:
        """The app that held the pruned release or build ``object_id``, and when it went."""
        row = self.conn.execute(q.FIND_PRUNED, {"p_id": object_id}).one_or_none()
        return None if row is None else (row.app_name, as_utc(row.pruned_at))

    def set_pinned(self, release_id: str, pinned: bool) -> None:
        self.conn.execute(q.SET_PINNED, {"p_id": release_id, "p_pinned": pinned})

    def list_garbage(self, limit: int) -> list[tuple[int, str, str]]:
        found = self.conn.execute(q.LIST_GARBAGE, {"p_limit": limit})
        return [(row.seq, row.kind, row.ref) for row in found]

    def forget_garbage(self, seqs: Sequence[int]) -> None:
        if seqs:
            self.conn.execute(q.DELETE_GARBAGE, {"p_seqs": list(seqs)})

    def in_use(self, kind: str, ref: str) -> bool:
        """Whether a build still names this source archive (``source``) or image."""
        query: Any = q.SOURCE_IN_USE if kind == "source" else q.IMAGE_IN_USE
        return self.conn.execute(query, {"p_ref": ref}).first() is not None
