"""Recorded results of calls with a client request id (see :mod:`relman_common.request_ids`):
each service's table of them, recalled and recorded inside the transaction of the write."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relman_common.errors import InvalidArgument
from relman_common.request_ids import (
    KEPT_FOR,
    KEY_LENGTH,
    PRUNE_EVERY,
    REQUEST_ID_METADATA,
    REQUEST_ID_REUSED,
    DuplicateRequest,
    RequestKey,
)
from relman_common.vocabulary import quote


def results_table(metadata: MetaData, name: str) -> Table:
    """A table of recorded results named ``name`` on ``metadata`` (each service its own)."""
    return Table(
        name,
        metadata,
        Column("key", String(KEY_LENGTH), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("kind", String(128), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created", DateTime(timezone=True), nullable=False, index=True),
    )


@dataclass(frozen=True)
class Recorded:
    kind: str
    payload: bytes


class RequestResults:
    """Records and recalls results in ``table``, each inside its caller's transaction."""

    def __init__(self, table: Table, kept_for: timedelta = KEPT_FOR) -> None:
        self.table = table
        self.kept_for = kept_for
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def recall(self, conn: Connection, key: RequestKey) -> Recorded | None:
        """The result recorded for ``key``; InvalidArgument if its id came with another
        request."""
        t = self.table
        row = conn.execute(
            select(t.c.fingerprint, t.c.kind, t.c.payload).where(t.c.key == key.key)
        ).first()
        if row is None:
            return None
        if row.fingerprint != key.fingerprint:
            raise InvalidArgument(
                f"request id {quote(key.request_id)} was used before for a different "
                f"{key.method.rsplit('/', 1)[-1]} request: use a new id for a new request",
                reason=REQUEST_ID_REUSED,
                field=REQUEST_ID_METADATA,
            )
        return Recorded(row.kind, bytes(row.payload))

    def record(
        self, conn: Connection, key: RequestKey, kind: str, payload: bytes, now: datetime
    ) -> None:
        """Records the result in ``conn``'s transaction (which must then commit); raises
        :class:`DuplicateRequest` when a concurrent call with the id recorded one first."""
        values = {
            "key": key.key,
            "fingerprint": key.fingerprint,
            "kind": kind,
            "payload": payload,
            "created": now,
        }
        try:
            conn.execute(insert(self.table).values(values))
        except IntegrityError:
            raise DuplicateRequest(key.key) from None
        self._prune(conn, now)

    def _prune(self, conn: Connection, now: datetime) -> None:
        """Deletes results older than ``kept_for``, at most once per PRUNE_EVERY seconds in
        this process."""
        with self._lock:
            if time.monotonic() < self._next_prune:
                return
            self._next_prune = time.monotonic() + PRUNE_EVERY
        conn.execute(delete(self.table).where(self.table.c.created < now - self.kept_for))


def create_results_table(name: str) -> None:
    """The body of a service's Alembic migration that adds its results table ``name``."""
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        name,
        sa.Column("key", sa.String(KEY_LENGTH), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(f"ix_{name}_created", name, ["created"])
