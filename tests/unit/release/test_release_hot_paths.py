"""The hot paths stay lean: the conversions every listing row goes through. Each test pins down a
behaviour the fast path must keep. (What each call asks of the database is in
tests/integration/release/test_release_hot_paths.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from relman_common.manifest import parse_manifest
from relman_common.timestamps import timestamp
from relman_release.domain.builds import MAX_CACHED_MANIFEST_CHARS, parsed_manifest

MANIFEST = "services:\n  web:\n    port: 3000\n"

# Every instant a Timestamp can hold, in any UTC offset, or naive (taken as UTC).
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
)
offsets = st.one_of(
    st.none(), st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
)


@given(instants, offsets)
def test_timestamps_are_exactly_what_protobuf_from_datetime_gives(
    naive: datetime, offset: timezone | None
) -> None:
    value = naive if offset is None else naive.replace(tzinfo=UTC).astimezone(offset)
    expected = Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected


def test_a_parsed_manifest_is_kept_by_its_text_unless_it_is_long() -> None:
    assert parsed_manifest(MANIFEST) is parsed_manifest(MANIFEST[:-1] + "\n")
    assert parsed_manifest(MANIFEST) == parse_manifest(MANIFEST)
    long = MANIFEST + "#" + "x" * MAX_CACHED_MANIFEST_CHARS + "\n"
    assert parsed_manifest(long) is not parsed_manifest(long)
