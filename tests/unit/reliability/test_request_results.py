"""The results table of client request ids (relman_common.request_results) on a SQLite file:
a result recorded in a transaction is recalled for the same key, refused for the same id with
another request, not recorded when its transaction rolls back, a second record of a key is
DuplicateRequest, and results older than the retention are pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from relman_common.db import make_engine
from relman_common.errors import InvalidArgument
from relman_common.request_ids import (
    REQUEST_ID_METADATA,
    REQUEST_ID_REUSED,
    DuplicateRequest,
    RequestKey,
)
from relman_common.request_results import RequestResults, results_table
from sqlalchemy import MetaData, func, select

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def key(request_id: str = "r1", fingerprint: str = "f" * 64) -> RequestKey:
    return RequestKey("alice", "/relman.v1.ReleaseService/ChangeEnv", request_id, fingerprint)


def test_results_are_recorded_in_the_transaction_and_recalled(tmp_path: Path) -> None:
    metadata = MetaData()
    table = results_table(metadata, "t_results")
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}", pool_size=1)
    metadata.create_all(engine)
    results = RequestResults(table)
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            results.record(conn, key(), "kind", b"lost", NOW)
            raise RuntimeError("the write failed: nothing is recorded")
        with engine.begin() as conn:
            assert results.recall(conn, key()) is None
            results.record(conn, key(), "kind", b"answer", NOW)
        with engine.connect() as conn:
            found = results.recall(conn, key())
            assert found is not None and (found.kind, found.payload) == ("kind", b"answer")
            with pytest.raises(InvalidArgument) as reused:
                results.recall(conn, key(fingerprint="0" * 64))
        assert (reused.value.reason, reused.value.field) == (REQUEST_ID_REUSED, REQUEST_ID_METADATA)
        with pytest.raises(DuplicateRequest), engine.begin() as conn:
            results.record(conn, key(), "kind", b"second", NOW)
        # A new record prunes what is older than the retention (at most every PRUNE_EVERY s).
        later = NOW + results.kept_for + timedelta(seconds=1)
        results._next_prune = 0.0
        with engine.begin() as conn:
            results.record(conn, key("r2"), "kind", b"new", later)
        with engine.connect() as conn:
            keys = conn.execute(select(table.c.key)).scalars().all()
            assert keys == [key("r2").key]
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 1
    finally:
        engine.dispose()
