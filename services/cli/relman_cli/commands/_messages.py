"""Messages of the API as the CLI shows them: times, JSON data, tables of messages.

States (outcomes, statuses, kinds) are proto enums; text and JSON both show them as the
lifecycle's words (``running``, ``rolled-back``), never as numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

from google.protobuf.message import Message

from relman_cli import output

M = TypeVar("M", bound=Message)

# A table's columns: (header, the cell of a message).
Columns: TypeAlias = Sequence[tuple[str, Callable[[M], str]]]


def when(message: Message, field_name: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime, or None when it is unset."""
    if not message.HasField(field_name):
        return None
    value: datetime = getattr(message, field_name).ToDatetime(tzinfo=UTC)
    return value


def to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data with proto field names and every field present; states
    (outcomes, statuses, kinds) as the words the text output uses (``rolled-back``)."""
    from google.protobuf import json_format

    data: dict[str, Any] = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        use_integers_for_enums=True,
    )
    _enum_words(message, data)
    return data


def _enum_words(message: Message, data: dict[str, Any]) -> None:
    from relman_common.pb_enums import word_of_field

    for field in message.DESCRIPTOR.fields:
        if field.name not in data:
            continue
        if field.enum_type is not None:
            shown = word_of_field(field.enum_type.full_name, data[field.name])
            if shown is not None:
                data[field.name] = shown
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            value = getattr(message, field.name)
            if isinstance(data[field.name], list):
                for item, item_data in zip(value, data[field.name], strict=True):
                    _enum_words(item, item_data)
            elif isinstance(data[field.name], dict):
                _enum_words(value, data[field.name])


def table(
    items: Sequence[M], columns: Columns[M], data: Callable[[M], dict[str, Any]] = to_dict
) -> output.Table:
    """A table of messages, a row each; its JSON form is ``data`` of each message."""
    rows = [[cell(item) for _, cell in columns] for item in items]
    return output.Table([header for header, _ in columns], rows, [data(i) for i in items])


def printer(
    progress: output.Progress, as_json: bool, text: Callable[[M], str]
) -> Callable[[M], None]:
    """Print each message of a stream (events, log lines) as ``text`` of it, or with
    ``-o json`` as one JSON object per line."""
    import json

    def show(message: M) -> None:
        if as_json:
            progress.line(json.dumps(to_dict(message), sort_keys=True, ensure_ascii=False))
        else:
            progress.line(text(message))

    return show
