"""``relman apps``: create, list, inspect, delete apps; cancel a running deployment."""

from __future__ import annotations

from typing import Any

import click
from relman.v1 import release_pb2

from relman_cli import output
from relman_cli.commands._common import (
    app_option,
    client,
    need_app,
    output_of,
    output_option,
    rack_option,
    to_dict,
    when,
)

RUNNING = "running"
NOT_PROMOTED = "created"


def app_status(app: Any) -> str:
    """``running`` once something was promoted, ``created`` before."""
    return RUNNING if app.active_release_id else NOT_PROMOTED


def list_result(apps: list[Any]) -> output.Table:
    rows = [[a.name, app_status(a), a.active_release_id] for a in apps]
    data = [{**to_dict(a), "status": app_status(a)} for a in apps]
    return output.Table(["NAME", "STATUS", "RELEASE"], rows, data)


def info_result(app: Any) -> output.Info:
    rows = [
        ("Name", app.name),
        ("Status", app_status(app)),
        ("Release", app.active_release_id),
        ("Latest", app.latest_release_id),
        ("Created", output.rfc3339(when(app, "created"))),
    ]
    return output.Info(rows, {**to_dict(app), "status": app_status(app)})


@click.group("apps", invoke_without_command=True)
@rack_option
@output_option
@click.pass_context
def apps(ctx: click.Context, rack: str | None, output_format: str | None) -> None:
    """List apps, or manage one."""
    if ctx.invoked_subcommand is None:
        _list(ctx)


@apps.command("list")
@rack_option
@output_option
@click.pass_context
def list_(ctx: click.Context, rack: str | None, output_format: str | None) -> None:
    """List apps."""
    _list(ctx)


def _list(ctx: click.Context) -> None:
    response = client(ctx).release.call("ListApps", release_pb2.ListAppsRequest())
    output.render(list_result(list(response.apps)), output_of(ctx))


@apps.command("create")
@click.argument("name")
@rack_option
@click.pass_context
def create(ctx: click.Context, name: str, rack: str | None) -> None:
    """Create an app."""
    progress = output.Progress()
    progress.start(f"Creating {name}")
    client(ctx).release.call("CreateApp", release_pb2.CreateAppRequest(name=name))
    progress.ok()


@apps.command("info")
@click.argument("name", required=False)
@app_option
@rack_option
@output_option
@click.pass_context
def info(
    ctx: click.Context,
    name: str | None,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Show an app (NAME, or -a)."""
    name = name or need_app(ctx)
    found = client(ctx).release.call("GetApp", release_pb2.GetAppRequest(name=name))
    output.render(info_result(found), output_of(ctx))


@apps.command("delete")
@click.argument("name")
@rack_option
@click.pass_context
def delete(ctx: click.Context, name: str, rack: str | None) -> None:
    """Delete an app and its builds and releases."""
    progress = output.Progress()
    progress.start(f"Deleting {name}")
    client(ctx).release.call("DeleteApp", release_pb2.DeleteAppRequest(name=name))
    progress.ok()


@apps.command("cancel")
@app_option
@rack_option
@click.pass_context
def cancel(ctx: click.Context, app: str | None, rack: str | None) -> None:
    """Cancel the app's running deployment (it rolls back)."""
    from relman.v1 import deployer_pb2

    name = need_app(ctx)
    progress = output.Progress()
    progress.start(f"Cancelling deployment of {name}")
    client(ctx).deployer.call("Cancel", deployer_pb2.CancelRequest(app=name))
    progress.ok()
