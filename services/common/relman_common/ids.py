"""Identifiers: one capital prefix letter and ten random capital letters (``RBCDEFGHIJ``)."""

from __future__ import annotations

import re
import secrets
import string

_LETTERS = string.ascii_uppercase
ID_LENGTH = 11

BUILD = "B"
RELEASE = "R"
DEPLOYMENT = "D"


def new_id(prefix: str) -> str:
    """A new id with ``prefix``, drawn from a cryptographic RNG.

    >>> len(new_id("R")), new_id("R")[0]
    (11, 'R')
    """
    if len(prefix) != 1 or prefix not in _LETTERS:
        raise ValueError(f"id prefix must be one capital letter, got {prefix!r}")
    return prefix + "".join(secrets.choice(_LETTERS) for _ in range(ID_LENGTH - 1))


def looks_like(prefix: str, value: str) -> bool:
    """Whether ``value`` has the shape of an id with ``prefix``."""
    return re.fullmatch(prefix + "[A-Z]{10}", value) is not None
