"""``relman tokens``: list, create and revoke API tokens (the Release service's TokenService).

A new token's secret is printed once, alone on stdout (for scripts: ``$(relman tokens create
ci)``); the warning that it will not be shown again goes to stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from relman.v1 import auth_pb2
from relman_common.lifecycle import TokenKind
from relman_common.pb_enums import to_pb, word

from relman_cli import output
from relman_cli.commands._common import (
    client,
    output_of,
    output_option,
    rack_option,
    to_dict,
    utcnow,
    when,
)

KINDS = ("user", "service", "admin")


def list_result(tokens: list[Any], now: Any) -> output.Table:
    rows = [
        [
            t.name,
            word(TokenKind, t.kind),
            output.ago(when(t, "created"), now),
            output.ago(when(t, "revoked"), now),
            t.actor,
        ]
        for t in tokens
    ]
    headers = ["NAME", "KIND", "CREATED", "REVOKED", "ACTOR"]
    return output.Table(headers, rows, [to_dict(t) for t in tokens])


@click.group("tokens", invoke_without_command=True)
@rack_option
@output_option
@click.pass_context
def tokens(ctx: click.Context, rack: str | None, output_format: str | None) -> None:
    """List, create and revoke API tokens (admin only)."""
    if ctx.invoked_subcommand is None:
        _list(ctx)


@tokens.command("list")
@rack_option
@output_option
@click.pass_context
def list_(ctx: click.Context, rack: str | None, output_format: str | None) -> None:
    """List tokens, revoked ones included."""
    _list(ctx)


def _list(ctx: click.Context) -> None:
    response = client(ctx).tokens.call("ListTokens", auth_pb2.ListTokensRequest())
    output.render(list_result(list(response.tokens), utcnow()), output_of(ctx))


@tokens.command("create")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="user",
    show_default=True,
    help="user: people; service: programs that act for people (the Deployer); admin: "
    "may also manage tokens.",
)
@rack_option
@click.pass_context
def create(ctx: click.Context, name: str, kind: str, rack: str | None) -> None:
    """Create a token NAME and print its secret (shown only this once)."""
    created = client(ctx).tokens.call(
        "CreateToken", auth_pb2.CreateTokenRequest(name=name, kind=to_pb(TokenKind(kind)))
    )
    sys.stdout.write(created.secret + "\n")
    sys.stdout.flush()
    output.warn(f"this is the only time the secret of token {name} is shown: store it now")


@tokens.command("revoke")
@click.argument("name")
@rack_option
@click.pass_context
def revoke(ctx: click.Context, name: str, rack: str | None) -> None:
    """Revoke token NAME: it stops working at once (within 2 s on other services)."""
    progress = output.Progress()
    progress.start(f"Revoking {name}")
    client(ctx).tokens.call("RevokeToken", auth_pb2.RevokeTokenRequest(name=name))
    progress.ok()
