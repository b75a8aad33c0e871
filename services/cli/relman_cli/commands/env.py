"""``relman env``: read an app's environment; change it (each change is a new release).

Changes are sent as changes (set these keys, unset those), never as a whole environment, so
the server applies them atomically and two people changing different keys lose nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

import click
from relman.v1 import release_pb2

from relman_cli import output
from relman_cli.commands._common import (
    announce_release,
    client,
    need_app,
    output_of,
    refuse_if_locked,
)
from relman_cli.commands._options import Command, listing_group, makes_release, options
from relman_cli.errors import CliError


def parse_pairs(args: Iterable[str], stdin_lines: Iterable[str] = ()) -> dict[str, str]:
    """``KEY=VALUE`` from stdin lines, then from arguments (which win); values may hold ``=``.

    Blank stdin lines and ``#`` comments are skipped. Keys keep their first-seen order.

    >>> parse_pairs(["A=1", "URL=x?a=b"], ["B=2", "", "# note", "A=0"])
    {'B': '2', 'A': '1', 'URL': 'x?a=b'}
    """
    pairs: dict[str, str] = {}
    for raw in stdin_lines:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        _add(pairs, line, "line on stdin")
    for arg in args:
        _add(pairs, arg, "argument")
    return pairs


def _add(pairs: dict[str, str], text: str, where: str) -> None:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CliError(f"invalid {where} {text!r}: expected KEY=VALUE")
    pairs[key] = value


def read_stdin(stream: TextIO) -> list[str]:
    """Extra ``KEY=VALUE`` lines, only when stdin is not a terminal (a pipe or a file)."""
    if output.is_tty(stream):
        return []
    return stream.readlines()


def env_result(response: release_pb2.GetEnvResponse, *, mask: bool = False) -> output.Lines:
    """``KEY=VALUE`` lines sorted by key; with ``mask``, ``KEY=****`` (in -o json too).

    >>> env_result(release_pb2.GetEnvResponse(env={"B": "2", "A": "1"}), mask=True).lines
    ['A=****', 'B=****']
    """
    env = dict(response.env)
    shown = dict.fromkeys(env, output.MASK) if mask else env
    data = {"env": shown, "release_id": response.release_id}
    return output.Lines(output.env_lines(env, mask=mask), data)


def _get_env(ctx: click.Context, release_id: str | None) -> release_pb2.GetEnvResponse:
    request = release_pb2.GetEnvRequest(app=need_app(ctx), release_id=release_id or "")
    return client(ctx).release.call(lambda stub: stub.GetEnv, request)


def reading(command: Command) -> Command:
    """-a, -r, -o and ``--release``: the options of the commands that read an environment."""
    command = click.option(
        "--release", "release_id", default=None, help="Read this release's env."
    )(command)
    return options("app", "rack", "output")(command)


def listing(command: Command) -> Command:
    """The options of ``env`` itself: those of :func:`reading`, and ``--reveal``."""
    command = click.option(
        "--reveal", is_flag=True, help="Show the values on a terminal too (else ****)."
    )(command)
    return reading(command)


@listing_group("env", listing, help="Show an app's environment (KEY=VALUE, sorted), or change it.")
def env(ctx: click.Context) -> output.Lines:
    """Show the environment of the app's latest release (or of --release); on a terminal the
    values are masked unless --reveal."""
    from relman_cli.commands.releases import masked

    response = _get_env(ctx, ctx.params.get("release_id"))
    # Masked as releases info masks: piped output (``relman env > file``, scripts) shows the
    # values, as Convox's does.
    return env_result(response, mask=masked(bool(ctx.params.get("reveal"))))


@env.command("get")
@click.argument("key")
@reading
@click.pass_context
def get(ctx: click.Context, key: str, release_id: str | None) -> None:
    """Print one value."""
    response = _get_env(ctx, release_id)
    if key not in response.env:
        raise CliError(f"env not found: {key}")
    value = response.env[key]
    data = {"key": key, "value": value, "release_id": response.release_id}
    output.render(output.Raw(value + "\n", data), output_of(ctx))


@env.command("set")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--replace", is_flag=True, help="Make these the only variables.")
@makes_release
@click.pass_context
def set_(
    ctx: click.Context, pairs: tuple[str, ...], replace: bool, promote: bool, id_only: bool
) -> None:
    """Set variables (also KEY=VALUE lines on stdin when it is not a terminal)."""
    name = need_app(ctx)
    changes = parse_pairs(pairs, read_stdin(click.get_text_stream("stdin")))
    if not changes and not replace:
        raise CliError("nothing to set: give KEY=VALUE arguments or lines on stdin")
    request = release_pb2.ChangeEnvRequest(app=name, set=changes, replace=replace)
    title = f"Setting {', '.join(changes)}" if changes else "Clearing the environment"
    _change(ctx, name, title, request, promote, id_only)


@env.command("unset")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@makes_release
@click.pass_context
def unset(ctx: click.Context, keys: tuple[str, ...], promote: bool, id_only: bool) -> None:
    """Remove variables."""
    name = need_app(ctx)
    unique = list(dict.fromkeys(keys))
    request = release_pb2.ChangeEnvRequest(app=name, unset=unique)
    _change(ctx, name, f"Unsetting {', '.join(unique)}", request, promote, id_only)


def _change(
    ctx: click.Context,
    app: str,
    title: str,
    request: release_pb2.ChangeEnvRequest,
    promote: bool,
    id_only: bool,
) -> None:
    if promote:
        refuse_if_locked(ctx, app)
    progress = output.Progress(id_only=id_only)
    progress.start(title)
    response = client(ctx).release.call(lambda stub: stub.ChangeEnv, request)
    progress.ok()
    if not response.changed:
        progress.line("Nothing changed; no release was created")
        return
    if response.warning:
        output.warn(response.warning)
    announce_release(ctx, app, response.release.id, progress, id_only=id_only, promote=promote)


def edited_changes(before: dict[str, str], text: str) -> tuple[dict[str, str], list[str]]:
    r"""What an edit changed: (keys set to new values, keys removed).

    >>> edited_changes({"A": "1", "B": "2"}, "A=1\n# a comment\nB=3\nC=4\n")
    ({'B': '3', 'C': '4'}, [])
    >>> edited_changes({"A": "1", "B": "2"}, "B=2\n")
    ({}, ['A'])
    """
    after = parse_pairs([], text.splitlines())
    changed = {key: value for key, value in after.items() if before.get(key) != value}
    return changed, [key for key in before if key not in after]


@env.command("edit")
@makes_release
@click.pass_context
def edit(ctx: click.Context, promote: bool, id_only: bool) -> None:
    """Edit the environment in $EDITOR (KEY=VALUE lines); the changes make one release.

    Only what the edit changed is sent, so changes others make meanwhile to other keys stay.
    """
    name = need_app(ctx)
    before = dict(_get_env(ctx, None).env)
    multiline = sorted(key for key, value in before.items() if "\n" in value or "\r" in value)
    if multiline:
        raise CliError(
            f"env edit cannot show the multi-line value of {', '.join(multiline)}: "
            "use env set KEY=VALUE (or lines on stdin) instead"
        )
    text = "".join(f"{line}\n" for line in output.env_lines(before))
    edited = click.edit(text, extension=".env", require_save=False)
    changed, removed = edited_changes(before, edited if edited is not None else text)
    if not changed and not removed:
        output.Progress(id_only=id_only).line("Nothing changed; no release was created")
        return
    request = release_pb2.ChangeEnvRequest(app=name, set=changed, unset=removed)
    _change(ctx, name, "Updating environment", request, promote, id_only)
