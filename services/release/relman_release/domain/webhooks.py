"""Webhooks (SPEC 9), as pure rules: which events there are, which a subscription's patterns
take, the JSON body of an event, its signature, and when a failed delivery is tried again.

>>> matches(("deployment.*",), "deployment.rolled-back"), matches(("deployment.*",), "build.failed")
(True, False)
>>> signature(b"s3cret", 1546300800, b'{"id":"EABCDEFGHIJ"}')
't=1546300800,v1=489573e6a4400bcacce3c5c23e4bb170ca1967d4d52adea4da3b713c9adb26b2'
>>> [round(retry_delay(n, lambda: 0.5)) for n in (1, 2, 3, 10, 11, 30)]
[1, 2, 4, 512, 600, 600]
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from relman_common.errors import InvalidArgument
from relman_common.lifecycle import Outcome
from relman_common.locks import rfc3339
from relman_common.vocabulary import quote

RELEASE_CREATED = "release.created"
BUILD_COMPLETE = "build.complete"
BUILD_FAILED = "build.failed"
DEPLOYMENT_EVENTS = {
    Outcome.RUNNING: "deployment.started",
    Outcome.SUCCEEDED: "deployment.succeeded",
    Outcome.ROLLED_BACK: "deployment.rolled-back",
    Outcome.FAILED: "deployment.failed",
    Outcome.CANCELLED: "deployment.cancelled",
}
EVENT_TYPES = (RELEASE_CREATED, BUILD_COMPLETE, BUILD_FAILED, *DEPLOYMENT_EVENTS.values())

# Retries: first after about FIRST_RETRY seconds, doubling, each delay jittered by +-50%,
# capped at MAX_DELAY; an event not delivered within GIVE_UP_AFTER is given up.
FIRST_RETRY = 1.0
MAX_DELAY = 600.0
GIVE_UP_AFTER = timedelta(hours=24)
# A receiver that has not answered within this many seconds has failed the attempt.
ATTEMPT_TIMEOUT = 10.0

MAX_URL = 2000
MAX_PATTERNS = 20
MAX_SECRET = 4096
_PATTERN = re.compile(r"[a-z*][a-z.*-]{0,63}")


@dataclass(frozen=True)
class Webhook:
    id: str
    app: str
    url: str
    events: tuple[str, ...]
    created: datetime
    actor: str


@dataclass(frozen=True)
class Event:
    """One outbox entry: ``body`` is the exact JSON sent."""

    id: str
    app: str
    type: str
    created: datetime
    body: bytes


@dataclass(frozen=True)
class Attempt:
    time: datetime
    # The HTTP status (0 when there was no answer) and what went wrong ("" on success).
    status_code: int
    error: str


@dataclass(frozen=True)
class Delivery:
    """An event on its way to one webhook: ``state`` pending, delivered or failed (given
    up after a day)."""

    seq: int
    webhook_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt: datetime | None
    last_error: str
    delivered: datetime | None
    history: tuple[Attempt, ...] = ()


PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Target:
    """One claimed delivery: where to, what, and with which key."""

    seq: int
    url: str
    secret: bytes
    event_id: str
    event_type: str
    body: bytes
    event_created: datetime
    attempts: int


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"invalid webhook URL {quote(url)}: use http:// or https:// with a host", field="url"
        )
    return url


def check_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The patterns (default: every event), each matching at least one event type."""
    if len(patterns) > MAX_PATTERNS:
        raise InvalidArgument(f"at most {MAX_PATTERNS} event patterns", field="events")
    for pattern in patterns:
        if not _PATTERN.fullmatch(pattern) or not any(
            fnmatch.fnmatchcase(t, pattern) for t in EVENT_TYPES
        ):
            raise InvalidArgument(
                f"invalid event pattern {quote(pattern)}: it matches none of "
                f"{', '.join(EVENT_TYPES)}",
                field="events",
            )
    return tuple(dict.fromkeys(patterns)) or ("*",)


def matches(patterns: Sequence[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def event_body(
    event_id: str, event_type: str, app: str, actor: str, when: datetime, data: Mapping[str, Any]
) -> bytes:
    """The JSON an event is sent as: id, type, time, app, actor and the event's own data."""
    value = {
        "id": event_id,
        "type": event_type,
        "created": rfc3339(when),
        "app": app,
        "actor": actor,
        "data": dict(data),
    }
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: bytes, unix_time: int, body: bytes) -> str:
    """``Relman-Signature``: ``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret, f"{unix_time}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={unix_time},v1={mac}"


def retry_delay(attempts: int, random: Callable[[], float]) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, ... each times a
    jitter of 0.5 to 1.5 (``random()`` in [0, 1)), never more than MAX_DELAY."""
    base = FIRST_RETRY * 2.0 ** min(attempts - 1, 30)
    return min(MAX_DELAY, base * (0.5 + random()))


def gives_up(event_created: datetime, now: datetime) -> bool:
    return now - event_created >= GIVE_UP_AFTER


class _OutboxWrites:
    """How many events this process has put in an outbox: the delivery worker looks at the
    database after a write only when this moved (most writes are of apps with no webhook)."""

    writes = 0


OUTBOX = _OutboxWrites()
