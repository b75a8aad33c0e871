"""Client request ids: a retried write is answered with the first call's result (SPEC 10).

Every mutating RPC of both services reads one metadata key, ``x-relman-request-id``: an id the
client picks for one intended change (the CLI makes one per command invocation) and sends
again, unchanged, on every retry of that change. The server keeps, per caller, method and id,
the result of the first call that succeeded, written in the same transaction as the change
itself (so a change and its record commit together or not at all), and answers a repeated id
with that result for at least :data:`KEPT_FOR` without changing anything again. A repeated id
with a different request is refused (INVALID_ARGUMENT ``REQUEST_ID_REUSED``): it is a client
bug, not a retry.

The RPC layer (:mod:`relman_common.grpc_errors`) reads the key into a context variable for
the current call (:func:`current_request`); the services' stores record and recall results
with :class:`relman_common.request_results.RequestResults`. Nothing here imports SQL (the CLI
imports this module).
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message

from relman_common.errors import InvalidArgument
from relman_common.vocabulary import quote

REQUEST_ID_METADATA = "x-relman-request-id"
REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
MAX_REQUEST_ID = 64
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# Results are kept at least this long; older ones are deleted now and then.
KEPT_FOR = timedelta(hours=24)
# How often (seconds) one process deletes results older than KEPT_FOR.
PRUNE_EVERY = 600.0
# Key column width: caller (<= 64) | method (<= 100) | request id (<= 64).
KEY_LENGTH = 240


@dataclass(frozen=True)
class RequestKey:
    """What a request id names: one caller's call of one method with that id, and the
    fingerprint of the request it came with."""

    caller: str
    method: str
    request_id: str
    fingerprint: str

    @property
    def key(self) -> str:
        return f"{self.caller}|{self.method}|{self.request_id}"[:KEY_LENGTH]


@dataclass(frozen=True)
class CallRequest:
    """The current call's method and its request id ("" when the client sent none)."""

    method: str
    request_id: str


_CURRENT: contextvars.ContextVar[CallRequest | None] = contextvars.ContextVar(
    "relman_request", default=None
)


def current_request() -> CallRequest | None:
    return _CURRENT.get()


def set_request(request: CallRequest | None) -> contextvars.Token[CallRequest | None]:
    return _CURRENT.set(request)


def validate_request_id(value: str) -> str:
    """``value`` if it is a usable request id ("" included: none), else InvalidArgument.

    >>> validate_request_id("c0ffee-1"), validate_request_id("")
    ('c0ffee-1', '')
    """
    if value and _REQUEST_ID.fullmatch(value) is None:
        raise InvalidArgument(
            f"invalid request id {quote(value)} (metadata {REQUEST_ID_METADATA}): use 1 to "
            f"{MAX_REQUEST_ID} letters, digits and . _ : - starting with a letter or digit",
            field=REQUEST_ID_METADATA,
        )
    return value


def new_request_id() -> str:
    """A fresh request id (128 random bits).

    >>> len(new_request_id())
    32
    """
    return secrets.token_hex(16)


def fingerprint(payload: bytes) -> str:
    """The SHA-256 of a request's (deterministic) serialization."""
    return hashlib.sha256(payload).hexdigest()


def request_key(caller: str, request: Message) -> RequestKey | None:
    """The key of the current call for ``caller`` and its ``request``; None when the call
    carried no request id (then the request is not serialized)."""
    current = current_request()
    if current is None or not current.request_id:
        return None
    payload = request.SerializeToString(deterministic=True)
    return RequestKey(caller, current.method, current.request_id, fingerprint(payload))


class DuplicateRequest(Exception):
    """Another call with the same request id recorded its result first (concurrently): its
    transaction must be rolled back and that result read instead."""
