"""What every command group shares: the -a/-r/-o options, the client, proto conversions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from relman_common.settings import APP, RACK

from relman_cli import output
from relman_cli.errors import CliError

if TYPE_CHECKING:
    from relman_cli.client import Client

F = TypeVar("F", bound=Callable[..., Any])


def utcnow() -> datetime:
    """The instant "ago" columns are measured from (tests replace it)."""
    return datetime.now(UTC)


def app_option(f: F) -> F:
    return click.option(
        "-a", "--app", "app", default=None, help=f"App name (default: ${APP.env})."
    )(f)


def rack_option(f: F) -> F:
    return click.option(
        "-r",
        "--rack",
        "rack",
        default=None,
        help=f"Rack name from ~/.config/relman/racks.yml (default: ${RACK.env}).",
    )(f)


def output_option(f: F) -> F:
    return click.option(
        "-o",
        "--output",
        "output_format",
        type=click.Choice(output.FORMATS),
        default=None,
        help="Output format (default: text).",
    )(f)


def id_option(f: F) -> F:
    return click.option(
        "--id",
        "id_only",
        is_flag=True,
        help="Print only the new id on stdout (progress goes to stderr).",
    )(f)


def _inherited(ctx: click.Context, name: str) -> Any:
    """A value given to this command, else to a parent group (``releases -a x info R``)."""
    node: click.Context | None = ctx
    while node is not None:
        value = node.params.get(name)
        if value:
            return value
        node = node.parent
    return None


def need_app(ctx: click.Context) -> str:
    app = _inherited(ctx, "app") or APP.value()
    if not app:
        raise CliError(f"no app given: use -a/--app NAME or set {APP.env}")
    return str(app)


def rack_of(ctx: click.Context) -> str:
    return str(_inherited(ctx, "rack") or RACK.value())


def output_of(ctx: click.Context) -> str:
    return str(_inherited(ctx, "output_format") or output.TEXT)


def client(ctx: click.Context) -> Client:
    """The client for this invocation's rack; closed when the command ends."""
    from relman_cli import config
    from relman_cli.client import Client

    root = ctx.find_root()
    existing = root.meta.get("relman.client")
    if existing is None:
        existing = Client(config.resolve(rack_of(ctx) or None))
        root.meta["relman.client"] = existing
        root.call_on_close(existing.close)
    assert isinstance(existing, Client)
    return existing


def context_flags(ctx: click.Context, app: str) -> str:
    """``-a app [-r rack]`` for commands we suggest to the user."""
    rack = rack_of(ctx)
    return f"-a {app}" + (f" -r {rack}" if rack else "")


def human_stream(id_only: bool) -> Any:
    """Where progress text goes: stderr when stdout is reserved for an id."""
    import sys

    return sys.stderr if id_only else sys.stdout


# --- proto conversions -----------------------------------------------------------------------


def when(message: Any, field_name: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime, or None when it is unset."""
    if not message.HasField(field_name):
        return None
    value: datetime = getattr(message, field_name).ToDatetime(tzinfo=UTC)
    return value


def to_dict(message: Any) -> dict[str, Any]:
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


def _enum_words(message: Any, data: dict[str, Any]) -> None:
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
