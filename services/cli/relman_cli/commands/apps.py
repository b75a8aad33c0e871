"""``relman apps``: create, list, inspect, delete apps; cancel a running deployment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from relman.v1 import release_pb2

from relman_cli import output
from relman_cli.commands._common import client, need_app
from relman_cli.commands._messages import Columns, table, to_dict, when
from relman_cli.commands._options import listing_group, on_name, options, shows

RUNNING = "running"
NOT_PROMOTED = "created"

App = release_pb2.App


def app_status(app: App) -> str:
    """``running`` once something was promoted, ``created`` before."""
    return RUNNING if app.active_release_id else NOT_PROMOTED


def app_data(app: App) -> dict[str, Any]:
    return {**to_dict(app), "status": app_status(app)}


def list_result(apps: Sequence[App]) -> output.Table:
    columns: Columns[App] = [
        ("APP", lambda a: a.name),
        ("STATUS", app_status),
        ("RELEASE", lambda a: a.active_release_id),
    ]
    return table(apps, columns, app_data)


def lock_text(app: App) -> str:
    """``false`` (as Convox says it), or ``true, by X at T: <message>``."""
    if not app.HasField("lock") or not app.lock.locked_by:
        return "false"
    lock = app.lock
    at = output.rfc3339(when(lock, "locked_at"))
    return f"true, by {lock.locked_by} at {at}: {lock.message}"


def info_result(app: App) -> output.Info:
    rows = [
        ("Name", app.name),
        ("Status", app_status(app)),
        ("Locked", lock_text(app)),
        ("Release", app.active_release_id),
        ("Latest", app.latest_release_id),
        ("Created", output.rfc3339(when(app, "created"))),
    ]
    return output.Info(rows, app_data(app))


@listing_group("apps", options("rack", "output"), help="List apps, or manage one.")
def apps(ctx: click.Context) -> output.Table:
    """List apps."""
    response = client(ctx).release.call(lambda stub: stub.ListApps, release_pb2.ListAppsRequest())
    return list_result(response.apps)


@apps.command("create")
@on_name("Creating")
def create(ctx: click.Context, name: str) -> None:
    """Create an app."""
    client(ctx).release.call(lambda stub: stub.CreateApp, release_pb2.CreateAppRequest(name=name))


@apps.command("info")
@click.argument("name", required=False)
@shows
def info(ctx: click.Context, name: str | None) -> output.Info:
    """Show an app (NAME, or -a)."""
    request = release_pb2.GetAppRequest(name=name or need_app(ctx))
    return info_result(client(ctx).release.call(lambda stub: stub.GetApp, request))


@apps.command("delete")
@on_name("Deleting")
def delete(ctx: click.Context, name: str) -> None:
    """Delete an app and its builds and releases."""
    client(ctx).release.call(lambda stub: stub.DeleteApp, release_pb2.DeleteAppRequest(name=name))


@apps.command("cancel")
@click.argument("name", required=False)
@options("app", "rack")
@click.pass_context
def cancel(ctx: click.Context, name: str | None) -> None:
    """Cancel the running deployment of app NAME (or -a): it rolls back."""
    from relman.v1 import deployer_pb2

    name = name or need_app(ctx)
    progress = output.Progress()
    progress.start(f"Cancelling deployment of {name}")
    client(ctx).deployer.call(lambda stub: stub.Cancel, deployer_pb2.CancelRequest(app=name))
    progress.ok()


@apps.command("lock")
@click.option("--message", "-m", required=True, help="Why: shown to whoever tries to deploy.")
@options("app", "rack")
@click.pass_context
def lock(ctx: click.Context, message: str) -> None:
    """Freeze the app's deploys: promote, rollback and deploy refuse until it is unlocked
    (--force overrides, and the deployment records it)."""
    name = need_app(ctx)
    progress = output.Progress()
    progress.start(f"Locking {name}")
    request = release_pb2.LockAppRequest(app=name, message=message)
    client(ctx).release.call(lambda stub: stub.LockApp, request)
    progress.ok()


@apps.command("unlock")
@options("app", "rack")
@click.pass_context
def unlock(ctx: click.Context) -> None:
    """Allow the app's deploys again."""
    name = need_app(ctx)
    progress = output.Progress()
    progress.start(f"Unlocking {name}")
    client(ctx).release.call(lambda stub: stub.UnlockApp, release_pb2.UnlockAppRequest(app=name))
    progress.ok()
