"""What a running command reads from its context, and how a command that made a release ends.

The shared options (declared in :mod:`relman_cli.commands._options`) are read here: the app,
the rack and the output format, each given to this command or to a group above it, and the
limit; and the client of the rack, made once per invocation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from relman_common.settings import APP, RACK

from relman_cli import output
from relman_cli.errors import CliError

if TYPE_CHECKING:
    from relman_cli.client import Client


def utcnow() -> datetime:
    """The instant "ago" columns are measured from (tests replace it)."""
    return datetime.now(UTC)


def _inherited(ctx: click.Context, name: str) -> object:
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


def limit_of(ctx: click.Context) -> int:
    """This command's ``--limit``; 0 (the server's default) when not given."""
    limit = ctx.params.get("limit")
    return limit if isinstance(limit, int) else 0


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


def announce_release(
    ctx: click.Context,
    app: str,
    release_id: str,
    progress: output.Progress,
    *,
    id_only: bool,
    promote: bool,
    line: bool = True,
) -> None:
    """``Release: R`` (unless ``line`` is false: the caller named the release already); the
    id alone on stdout under ``--id``; then, with ``--promote``, the promotion (under
    ``--dry-run``, what it would change)."""
    if line:
        progress.line(f"Release: {release_id}")
    if id_only:
        click.echo(release_id)
    if promote:
        from relman_cli.commands._options import dry_run_of

        flags = dry_run_of(ctx)
        if flags.on:
            from relman_cli.commands import _plan

            # Under --id the plan goes where the progress goes: stdout holds only the id.
            _plan.dry_run(
                ctx,
                app,
                release_id,
                reveal=flags.reveal,
                exit_code=flags.exit_code,
                stream=progress.stream,
            )
            return
        from relman_cli.commands import _deploy  # only promoting needs the stream follower

        _deploy.promote(ctx, app, release_id, progress, force=forced(ctx))


def forced(ctx: click.Context) -> bool:
    return bool(_inherited(ctx, "force"))


def refuse_if_locked(ctx: click.Context, app: str) -> None:
    """Before a command that will promote makes a build or a release: stop with the
    Deployer's words when the app is locked and ``--force`` was not given (the Deployer
    checks again when it promotes)."""
    from relman.v1 import release_pb2
    from relman_common.locks import AppLock, locked_message

    if forced(ctx):
        return
    found = client(ctx).release.call(lambda stub: stub.GetApp, release_pb2.GetAppRequest(name=app))
    if found.HasField("lock") and found.lock.locked_by:
        lock = found.lock
        at = lock.locked_at.ToDatetime(tzinfo=UTC)
        raise CliError(locked_message(AppLock(lock.locked_by, at, lock.message)))
