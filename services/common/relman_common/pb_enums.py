"""The lifecycle's enums to and from their proto enums, by one naming rule: the proto value
of ``Outcome.ROLLED_BACK`` is ``OUTCOME_ROLLED_BACK`` (``<PROTO ENUM NAME>_<MEMBER NAME>``), and
the ``*_UNSPECIFIED`` value (0) is ``None``.

>>> to_pb(Outcome.ROLLED_BACK) == types_pb2.OUTCOME_ROLLED_BACK
True
>>> from_pb(Outcome, types_pb2.OUTCOME_ROLLED_BACK), from_pb(Outcome, 0)
(<Outcome.ROLLED_BACK: 'rolled-back'>, None)
>>> word(Outcome, types_pb2.OUTCOME_ROLLED_BACK)
'rolled-back'
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from relman.v1 import (  # type: ignore[import-not-found]
    auth_pb2,
    release_pb2,
    types_pb2,
)

from relman_common.lifecycle import BuildStatus, Kind, Outcome, ReleaseStatus, TokenKind

E = TypeVar("E", bound=Enum)

# Each lifecycle enum, its proto enum wrapper, and the prefix of its values.
_PROTO: dict[type[Enum], tuple[Any, str]] = {
    Outcome: (types_pb2.Outcome, "OUTCOME_"),
    Kind: (types_pb2.DeploymentKind, "DEPLOYMENT_KIND_"),
    BuildStatus: (release_pb2.BuildStatus, "BUILD_STATUS_"),
    ReleaseStatus: (release_pb2.ReleaseStatus, "RELEASE_STATUS_"),
    TokenKind: (auth_pb2.TokenKind, "TOKEN_KIND_"),
}


def to_pb(member: Enum | None) -> Any:
    """The proto value of ``member`` (None and ``ReleaseStatus.NONE`` are the unspecified
    value); typed Any because each generated message field has an enum type of its own."""
    if member is None or member.value == "":
        return 0
    wrapper, prefix = _PROTO[type(member)]
    return int(wrapper.Value(prefix + member.name))


def from_pb(enum: type[E], value: int) -> E | None:
    """The member of ``enum`` for a proto value; None for 0 (unspecified) or an unknown value
    (sent by a newer peer)."""
    wrapper, prefix = _PROTO[enum]
    if value == 0:
        return None
    try:
        name: str = wrapper.Name(value)
    except ValueError:
        return None
    return enum[name.removeprefix(prefix)]


def word(enum: type[Enum], value: int) -> str:
    """What the CLI prints for a proto value: the member's value (``rolled-back``), ``""``
    for the unspecified value."""
    member = from_pb(enum, value)
    return "" if member is None else str(member.value)


_BY_PROTO_NAME: dict[str, type[Enum]] = {
    wrapper.DESCRIPTOR.full_name: enum for enum, (wrapper, _) in _PROTO.items()
}


def word_of_field(enum_full_name: str, value: int) -> str | None:
    """The word for a value of the proto enum named ``enum_full_name`` (e.g.
    ``relman.v1.Outcome``); None when it is not one of the lifecycle's enums."""
    enum = _BY_PROTO_NAME.get(enum_full_name)
    return None if enum is None else word(enum, value)
