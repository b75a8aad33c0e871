"""Results of mutating calls by client request id, in the Release service's transactions
(relman_common.request_ids): recalled and recorded in the transaction of the write itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from relman_common.db import commit
from relman_common.request_ids import RequestKey
from relman_common.request_results import RequestResults

from relman_release.store.tables import request_results
from relman_release.store.uow import SharedWrite, SqlUnitOfWork

T = TypeVar("T")

RESULTS = RequestResults(request_results)


def in_one_transaction(uow: SqlUnitOfWork, fn: Callable[[SharedWrite], T]) -> T:
    """``fn`` with a unit of work whose every ``write()`` is one transaction, committed when
    ``fn`` returns (rolled back if it raises)."""
    with uow.writer.connect() as conn, conn.begin() as tx:
        result = fn(SharedWrite(uow, conn))
        commit(tx)
        return result


def recall(uow: SharedWrite, key: RequestKey) -> Message | None:
    """The response recorded for ``key``, read in ``uow``'s transaction."""
    with uow.write() as repo:
        found = RESULTS.recall(repo.conn, key)
    return _message(found.kind, found.payload) if found is not None else None


def recall_committed(uow: SqlUnitOfWork, key: RequestKey) -> Message | None:
    """The response recorded for ``key`` by a transaction that committed."""
    with uow.read() as repo:
        found = RESULTS.recall(repo.conn, key)
    return _message(found.kind, found.payload) if found is not None else None


def record(uow: SharedWrite, key: RequestKey, response: Message) -> None:
    """Records ``response`` for ``key`` in ``uow``'s transaction (DuplicateRequest if a
    concurrent call with the same id recorded one first)."""
    payload = response.SerializeToString(deterministic=True)
    with uow.write() as repo:
        RESULTS.record(repo.conn, key, response.DESCRIPTOR.full_name, payload, uow.now())


def _message(kind: str, payload: bytes) -> Message:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(kind)
    cls = message_factory.GetMessageClass(descriptor)
    message: Message = cls.FromString(payload)
    return message
