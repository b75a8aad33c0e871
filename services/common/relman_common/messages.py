"""Domain values to protobuf messages, by one rule: a field goes to the message field of its
name (a dataclass field, or a property such as ``ReleaseDiff.build_changed``).

Datetimes become Timestamps, lifecycle enums their proto values, mappings maps; a field that
is ``None`` leaves the message field unset. Message fields the value does not have are given
by the caller, or left unset.

>>> from dataclasses import dataclass
>>> from datetime import UTC
>>> from relman.v1 import deployer_pb2
>>> from relman_common.lifecycle import Outcome
>>> @dataclass(frozen=True)
... class Run:
...     id: str
...     started: datetime
...     ended: datetime | None = None
>>> msg = to_message(deployer_pb2.Deployment, Run("D1", datetime(2019, 1, 1, tzinfo=UTC)),
...                  outcome=to_pb(Outcome.FAILED))
>>> msg.id, msg.started.seconds, msg.HasField("ended"), msg.outcome == to_pb(Outcome.FAILED)
('D1', 1546300800, False, True)
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from relman_common.pb_enums import to_pb
from relman_common.records import field_types
from relman_common.timestamps import timestamp

M = TypeVar("M")

# Per (message class, value class): (field name, how its value becomes the message's).
_Plan = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_PLANS: dict[tuple[type[Any], type[Any]], _Plan] = {}


def to_message(message: type[M], value: Any, **given: Any) -> M:
    """A ``message`` with the fields ``value`` has of the same names, and those ``given``."""
    fields: dict[str, Any] = {}
    for name, convert in _plan(message, type(value)):
        field = getattr(value, name)
        if field is not None:
            fields[name] = field if convert is None else convert(field)
    fields.update(given)
    return message(**fields)


def _plan(message: type[Any], cls: type[Any]) -> _Plan:
    plan = _PLANS.get((message, cls))
    if plan is None:
        kinds = {name: kind for name, kind, _ in field_types(cls)}
        steps: list[tuple[str, Callable[[Any], Any] | None]] = []
        for field in message.DESCRIPTOR.fields:
            if field.name in kinds:
                steps.append((field.name, _converter(kinds[field.name])))
            elif isinstance(getattr(cls, field.name, None), property):
                steps.append((field.name, None))
        plan = _PLANS[(message, cls)] = tuple(steps)
    return plan


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    if kind is datetime:
        return timestamp
    if isinstance(kind, type) and issubclass(kind, Enum):
        return to_pb
    if kind is Mapping or typing.get_origin(kind) in (Mapping, dict):
        return dict
    return None
