"""The store's part of running builds: claim, finish, heartbeats, interruptions, log lines.

Every change names the runner (the Release service instance running the build) and the
status it expects, so it changes nothing when another instance owns the build or the build
was already ended (as ``interrupted``, by a shutdown or a sweep).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from relman_common.lifecycle import BuildStatus
from sqlalchemy import Connection

from relman_release.domain.model import LogLine
from relman_release.store import rows
from relman_release.store import statements as q
from relman_release.store.codec import encode_images


class BuildRuns:
    """Mixed into the SQL repository: works inside the transaction of ``conn``."""

    conn: Connection

    def start_build(self, build_id: str, runner: str, when: datetime) -> bool:
        params = {"p_id": build_id, "p_runner": runner, "p_when": when}
        return self.conn.execute(q.START_BUILD, params).rowcount == 1

    def finish_build(
        self,
        build_id: str,
        runner: str,
        status: BuildStatus,
        when: datetime,
        images: dict[str, str],
        reason: str = "",
        release_id: str = "",
    ) -> bool:
        params: dict[str, Any] = {
            "p_id": build_id,
            "p_runner": runner,
            "p_status": status.value,
            "p_when": when,
            "p_images": encode_images(images),
            "p_reason": reason,
            "p_release_id": release_id,
        }
        return self.conn.execute(q.FINISH_BUILD, params).rowcount == 1

    def renew_builds(self, runner: str, build_ids: Sequence[str], when: datetime) -> int:
        params = {"p_runner": runner, "p_ids": list(build_ids), "p_when": when}
        return self.conn.execute(q.RENEW_BUILDS, params).rowcount

    def interrupt_builds(
        self, when: datetime, reason: str, *, runner: str = "", stale_before: datetime | None = None
    ) -> list[str]:
        """Fails the unfinished builds of ``runner``, or those whose heartbeat is older than
        ``stale_before``; returns their ids."""
        params: dict[str, Any] = {"p_when": when, "p_reason": reason}
        if runner:
            statement = q.INTERRUPT_RUNNERS_BUILDS
            params["p_runner"] = runner
        else:
            statement = q.INTERRUPT_STALE_BUILDS
            params["p_before"] = stale_before
        return [str(i) for i in self.conn.execute(statement, params).scalars()]

    def append_build_log(self, build_id: str, lines: Sequence[LogLine]) -> None:
        if not lines:
            return
        self.conn.execute(
            q.INSERT_LOG_LINES,
            [{"build_id": build_id, "seq": x.seq, "time": x.time, "text": x.text} for x in lines],
        )
        self.conn.execute(q.SET_LOG_LINES, {"p_id": build_id, "p_count": lines[-1].seq})

    def build_log(self, build_id: str, after_seq: int, limit: int) -> list[LogLine]:
        params = {"p_id": build_id, "p_after": after_seq, "p_limit": limit}
        return [rows.log_line(row) for row in self.conn.execute(q.READ_LOG, params)]
