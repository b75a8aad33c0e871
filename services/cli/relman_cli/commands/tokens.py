"""``relman tokens``: list, create and revoke API tokens (the Release service's TokenService).

A new token's secret is printed once, alone on stdout (for scripts: ``$(relman tokens create
ci)``); the warning that it will not be shown again goes to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

import click
from relman.v1 import auth_pb2
from relman_common.lifecycle import TokenKind
from relman_common.pb_enums import to_pb, word

from relman_cli import output
from relman_cli.commands._common import client, utcnow
from relman_cli.commands._messages import Columns, table, when
from relman_cli.commands._options import listing_group, on_name, options

KINDS = ("user", "service", "admin")

Token = auth_pb2.Token


def list_result(tokens: Sequence[Token], now: datetime) -> output.Table:
    columns: Columns[Token] = [
        ("NAME", lambda t: t.name),
        ("KIND", lambda t: word(TokenKind, t.kind)),
        ("CREATED", lambda t: output.ago(when(t, "created"), now)),
        ("REVOKED", lambda t: output.ago(when(t, "revoked"), now)),
        ("ACTOR", lambda t: t.actor),
    ]
    return table(tokens, columns)


@listing_group(
    "tokens", options("rack", "output"), help="List, create and revoke API tokens (admin only)."
)
def tokens(ctx: click.Context) -> output.Table:
    """List tokens, revoked ones included."""
    response = client(ctx).tokens.call(lambda stub: stub.ListTokens, auth_pb2.ListTokensRequest())
    return list_result(response.tokens, utcnow())


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
@options("rack")
@click.pass_context
def create(ctx: click.Context, name: str, kind: str) -> None:
    """Create a token NAME and print its secret (shown only this once)."""
    request = auth_pb2.CreateTokenRequest(name=name, kind=to_pb(TokenKind(kind)))
    created = client(ctx).tokens.call(lambda stub: stub.CreateToken, request)
    sys.stdout.write(created.secret + "\n")
    sys.stdout.flush()
    output.warn(f"this is the only time the secret of token {name} is shown: store it now")


@tokens.command("revoke")
@on_name("Revoking")
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke token NAME: it stops working at once (within 2 s on other services)."""
    client(ctx).tokens.call(lambda stub: stub.RevokeToken, auth_pb2.RevokeTokenRequest(name=name))
