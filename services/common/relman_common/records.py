"""Table rows to domain values and back, by one rule: a column holds the field of its name.

Reading a row, each column's value becomes its field's type: an aware UTC datetime, a member
of the field's enum, an int; ``None`` stays ``None``, and so does ``""`` in the column of an
optional field (an outcome column holds ``""`` for none). Fields that are not columns are
given by the caller, or keep their defaults. Writing a row, enums are written as their values.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Run:
...     id: str
...     started: datetime
...     ended: datetime | None = None
...     seq: int = 0
>>> run = from_row(Run, {"id": "D1", "started": datetime(2019, 1, 1), "ended": None, "seq": "3"})
>>> run.started.tzinfo, run.ended, run.seq
(datetime.timezone.utc, None, 3)
>>> to_row(run) == {"id": "D1", "started": run.started, "ended": None, "seq": 3}
True
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from relman_common.clock import as_utc

T = TypeVar("T")

# Per dataclass: (field name, how its column's value becomes the field's value, optional?).
_Plan = tuple[tuple[str, Callable[[Any], Any] | None, bool], ...]
_PLANS: dict[type[Any], _Plan] = {}


def from_row(cls: type[T], row: Mapping[Any, Any], **given: Any) -> T:
    """A ``cls`` (a dataclass) from the columns of ``row`` named as its fields; ``given``
    supplies fields that are not columns (or not as stored)."""
    values: dict[str, Any] = {}
    for name, convert, optional in _plan(cls):
        if name in given or name not in row:
            continue
        value = row[name]
        if value is None or (optional and value == ""):
            values[name] = None
        else:
            values[name] = value if convert is None else convert(value)
    return cls(**values, **given)


def to_row(value: Any) -> dict[str, Any]:
    """Every field of the dataclass ``value`` as a column value (enums as their values)."""
    names = _FIELD_NAMES.get(type(value))
    if names is None:
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    return {name: _column_value(getattr(value, name)) for name in names}


# Per dataclass: its field names (dataclasses.fields() is slow for a busy path).
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _column_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def field_types(cls: type[Any]) -> tuple[tuple[str, Any, bool], ...]:
    """``(name, type, optional)`` of each field of the dataclass ``cls``, ``X | None`` read as
    ``X``, optional. The annotations must name types the class's module imports at run time.
    """
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, *_unoptional(hints[f.name])) for f in dataclasses.fields(cls))
        _FIELD_TYPES[cls] = found
    return found


_FIELD_TYPES: dict[type[Any], tuple[tuple[str, Any, bool], ...]] = {}


def _plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        steps = [(name, _converter(kind), optional) for name, kind, optional in field_types(cls)]
        plan = _PLANS[cls] = tuple(steps)
    return plan


def _unoptional(kind: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(kind, False)``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def _converter(kind: Any) -> Callable[[Any], Any] | None:
    if kind is datetime:
        return as_utc
    if kind is int:
        return int
    if kind is bool:  # SQLite stores booleans as 0/1
        return bool
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind
    return None
