"""Listing limits and opaque cursors.

A cursor is the ``seq`` of the last item a page showed; the next page holds the items with a
smaller ``seq`` (keyset paging: no OFFSET, so page N costs the same as page 1). It is bound to
the listing and app it came from.

>>> token = encode_token("releases", "myapp", 42)
>>> decode_token("releases", "myapp", token)
42
>>> decode_token("releases", "myapp", "")
"""

from __future__ import annotations

import base64
import binascii

from relman_common.errors import InvalidArgument


def encode_token(kind: str, app: str, seq: int) -> str:
    raw = f"v1:{kind}:{app}:{seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, app: str, token: str) -> int | None:
    """The cursor in ``token`` (None for the first page); InvalidArgument for a foreign or
    damaged token."""
    if not token:
        return None
    invalid = InvalidArgument(
        "invalid page_token: pass the next_page_token of the previous page", field="page_token"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    parts = raw.split(":")
    if len(parts) != 4 or parts[0] != "v1" or parts[1] != kind or parts[2] != app:
        raise invalid
    try:
        seq = int(parts[3])
    except ValueError:
        raise invalid from None
    if seq < 1:
        raise invalid
    return seq
