"""``google.protobuf.Timestamp`` from datetimes, for every converter of both services.

``Timestamp.FromDatetime`` costs three times what exact integer arithmetic does, and a listing
converts one or two per row.

>>> from datetime import UTC, datetime
>>> ts = timestamp(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC))
>>> (ts.seconds, ts.nanos)
(-1, 500000000)
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    """``value`` as a Timestamp; naive datetimes are taken as UTC, as FromDatetime does."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH  # days may be negative; seconds and microseconds never are
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)
