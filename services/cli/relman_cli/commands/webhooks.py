"""``relman webhooks``: an app's webhooks (SPEC 9): list, add, remove, and their deliveries.

A secret the service makes (when no ``--secret-file`` is given) is printed once, on stdout
after the new webhook's id; the warning that it will not be shown again goes to stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click
from relman.v1 import release_pb2

from relman_cli import output
from relman_cli.commands._common import client, need_app, utcnow
from relman_cli.commands._messages import Columns, table, when
from relman_cli.commands._options import listing_group, options, shows
from relman_cli.errors import CliError

Webhook = release_pb2.Webhook
Delivery = release_pb2.WebhookDelivery


def list_result(hooks: Sequence[Webhook], now: datetime) -> output.Table:
    columns: Columns[Webhook] = [
        ("ID", lambda h: h.id),
        ("URL", lambda h: h.url),
        ("EVENTS", lambda h: ",".join(h.events)),
        ("CREATED", lambda h: output.ago(when(h, "created"), now)),
    ]
    return table(hooks, columns)


def _last(delivery: Delivery) -> str:
    if not delivery.history:
        return ""
    attempt = delivery.history[-1]
    return attempt.error or str(attempt.status_code)


def deliveries_result(found: Sequence[Delivery], now: datetime) -> output.Table:
    columns: Columns[Delivery] = [
        ("EVENT", lambda d: d.event_id),
        ("TYPE", lambda d: d.event_type),
        ("STATE", lambda d: d.state),
        ("ATTEMPTS", lambda d: str(d.attempts)),
        ("LAST", _last),
        (
            "NEXT",
            lambda d: output.ago(when(d, "next_attempt"), now) if d.state == "pending" else "",
        ),
    ]
    return table(found, columns)


@listing_group(
    "webhooks", options("app", "rack", "output"), help="List an app's webhooks, or manage one."
)
def webhooks(ctx: click.Context) -> output.Table:
    """List an app's webhooks."""
    request = release_pb2.ListWebhooksRequest(app=need_app(ctx))
    response = client(ctx).release.call(lambda stub: stub.ListWebhooks, request)
    return list_result(response.webhooks, utcnow())


def read_secret(path: str) -> str:
    """The file's content without its trailing newline."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read secret file {path}: {err}") from err
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise CliError(f"secret file {path} is empty")
    return secret


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="PATTERN",
    help="Send only these events, e.g. deployment.* (repeatable; default: all).",
)
@click.option(
    "--secret-file",
    default=None,
    metavar="FILE",
    help="The signing secret (the file without its trailing newline); default: one is made "
    "and printed once.",
)
@options("app", "rack")
@click.pass_context
def add(ctx: click.Context, url: str, events: tuple[str, ...], secret_file: str | None) -> None:
    """Send the app's events to URL (POST, JSON, signed with Relman-Signature)."""
    name = need_app(ctx)
    secret = read_secret(secret_file) if secret_file else ""
    progress = output.Progress()
    progress.start(f"Adding webhook {url}")
    request = release_pb2.AddWebhookRequest(app=name, url=url, events=list(events), secret=secret)
    added = client(ctx).release.call(lambda stub: stub.AddWebhook, request)
    progress.ok()
    progress.line(f"Webhook: {added.webhook.id}")
    if added.secret:
        progress.line(f"Secret: {added.secret}")
        output.warn("this is the only time the webhook's secret is shown: store it now")


@webhooks.command("remove")
@click.argument("webhook_id")
@options("rack")
@click.pass_context
def remove(ctx: click.Context, webhook_id: str) -> None:
    """Stop sending to a webhook (its pending deliveries are dropped)."""
    progress = output.Progress()
    progress.start(f"Removing {webhook_id}")
    request = release_pb2.RemoveWebhookRequest(id=webhook_id)
    client(ctx).release.call(lambda stub: stub.RemoveWebhook, request)
    progress.ok()


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", type=click.IntRange(min=1, max=1000), help="How many (default 10).")
@shows
def deliveries(ctx: click.Context, webhook_id: str, limit: int | None) -> output.Table:
    """A webhook's deliveries, newest first: state, attempts, the last answer (-o json: every
    attempt)."""
    request = release_pb2.ListWebhookDeliveriesRequest(id=webhook_id, limit=limit or 0)
    response = client(ctx).release.call(lambda stub: stub.ListWebhookDeliveries, request)
    return deliveries_result(response.deliveries, utcnow())
