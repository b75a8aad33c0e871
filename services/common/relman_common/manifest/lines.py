"""YAML that remembers where each key and value stood, for errors that name the line.

>>> doc = load_with_lines("a: 1\\nb:\\n  - x\\n")
>>> doc.key_lines["b"], doc["b"].lines
(2, [3])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from relman_common.errors import INVALID_MANIFEST, InvalidArgument
from relman_common.vocabulary import quote


def manifest_error(line: int, message: str) -> InvalidArgument:
    """``manifest line N: <path>: <reason>`` (SPEC 2)."""
    return InvalidArgument(
        f"manifest line {line}: {message}", reason=INVALID_MANIFEST, field="manifest"
    )


class Map(dict[str, Any]):
    """A mapping that remembers the line of each key and of each value (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}


class Seq(list[Any]):
    """A sequence that remembers the line of each item (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Map:
    loader.flatten_mapping(node)
    result = Map(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise manifest_error(key_line, "keys must be plain text")
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise manifest_error(key_line, f"duplicate key {quote(key)}")
        result[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
        result.key_lines[key] = key_line
        result.value_lines[key] = value_node.start_mark.line + 1
    return result


def _construct_seq(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Seq:
    result = Seq(node.start_mark.line + 1)
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))  # type: ignore[no-untyped-call]
        result.lines.append(item.start_mark.line + 1)
    return result


def _readable(
    construct: Callable[[yaml.SafeLoader, yaml.ScalarNode], Any], what: str
) -> Callable[[yaml.SafeLoader, yaml.ScalarNode], Any]:
    """``construct``, refusing with the line a scalar YAML takes for a ``what`` but Python can
    not make one of (a 5,000-digit number, the date 2001-13-45): bad input, not a bug."""

    def construct_readable(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except ValueError:
            line = node.start_mark.line + 1
            raise manifest_error(line, f"{quote(str(node.value))} is not a valid {what}") from None

    return construct_readable


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor(
    "tag:yaml.org,2002:int", _readable(yaml.SafeLoader.construct_yaml_int, "number")
)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    _readable(yaml.SafeLoader.construct_yaml_timestamp, "date or time"),
)


def load_with_lines(text: str) -> Any:
    """The YAML document in ``text`` with :class:`Map` and :class:`Seq` for its collections,
    or InvalidArgument naming the line of a syntax error."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = err.problem or err.context or "invalid YAML"
        raise manifest_error(line, f"invalid YAML: {reason}") from None
    except yaml.YAMLError as err:
        raise InvalidArgument(
            f"manifest is not valid YAML: {err}", reason=INVALID_MANIFEST, field="manifest"
        ) from None
    except RecursionError:  # the parser and the constructor recurse once per level
        raise InvalidArgument(
            "manifest is not valid YAML: it nests lists or mappings too deeply",
            reason=INVALID_MANIFEST,
            field="manifest",
        ) from None
