"""``relman deployments``: every promotion of an app, its outcome and its event log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from relman.v1 import deployer_pb2
from relman_common.lifecycle import Kind, Outcome
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands import _deploy
from relman_cli.commands._common import (
    app_option,
    client,
    need_app,
    output_of,
    output_option,
    rack_option,
    to_dict,
    utcnow,
    when,
)
from relman_cli.errors import CliError
from relman_cli.follow import RUNNING, SUCCEEDED


def list_result(deployments: list[Any], now: datetime) -> output.Table:
    rows = [
        [
            d.id,
            d.release_id,
            word(Outcome, d.outcome),
            d.actor,
            output.ago(when(d, "started"), now),
            output.ago(when(d, "ended"), now),
        ]
        for d in deployments
    ]
    headers = ["ID", "RELEASE", "OUTCOME", "ACTOR", "STARTED", "ENDED"]
    return output.Table(headers, rows, [to_dict(d) for d in deployments])


def info_result(d: Any) -> output.Info:
    rows = [
        ("Id", d.id),
        ("App", d.app),
        ("Kind", word(Kind, d.kind)),
        ("Release", d.release_id),
        ("Previous", d.previous_release_id),
        ("Rollback Of", d.rollback_of),
        ("Outcome", word(Outcome, d.outcome)),
        ("Reason", d.reason),
        ("Actor", d.actor),
        ("Started", output.rfc3339(when(d, "started"))),
        ("Ended", output.rfc3339(when(d, "ended"))),
        ("Events", str(d.last_seq)),
    ]
    return output.Info([(k, v) for k, v in rows if v or k != "Rollback Of"], to_dict(d))


@click.group("deployments", invoke_without_command=True)
@app_option
@rack_option
@output_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="How many (default 10).")
@click.pass_context
def deployments(
    ctx: click.Context,
    app: str | None,
    rack: str | None,
    output_format: str | None,
    limit: int | None,
) -> None:
    """List an app's deployments, newest first, or look into one."""
    if ctx.invoked_subcommand is None:
        _list(ctx, limit)


@deployments.command("list")
@app_option
@rack_option
@output_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="How many (default 10).")
@click.pass_context
def list_(
    ctx: click.Context,
    app: str | None,
    rack: str | None,
    output_format: str | None,
    limit: int | None,
) -> None:
    """List an app's deployments, newest first."""
    _list(ctx, limit)


def _list(ctx: click.Context, limit: int | None) -> None:
    request = deployer_pb2.ListDeploymentsRequest(app=need_app(ctx), limit=limit or 0)
    response = client(ctx).deployer.call("ListDeployments", request)
    output.render(list_result(list(response.deployments), utcnow()), output_of(ctx))


@deployments.command("info")
@click.argument("deployment_id")
@app_option
@rack_option
@output_option
@click.pass_context
def info(
    ctx: click.Context,
    deployment_id: str,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Show a deployment: what it deployed, who started it, how it ended."""
    request = deployer_pb2.GetDeploymentRequest(id=deployment_id)
    found = client(ctx).deployer.call("GetDeployment", request)
    output.render(info_result(found), output_of(ctx))


@deployments.command("logs")
@click.argument("deployment_id")
@click.option("--follow", "-f", is_flag=True, help="Keep following until it ends.")
@app_option
@rack_option
@output_option
@click.pass_context
def logs(
    ctx: click.Context,
    deployment_id: str,
    follow: bool,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Print a deployment's events; with --follow, until it ends (exit 1 unless it succeeded).

    With -o json, one JSON object per event per line.
    """
    deployer = client(ctx).deployer
    current = deployer.call("GetDeployment", deployer_pb2.GetDeploymentRequest(id=deployment_id))
    app_name = current.app or (ctx.params.get("app") or "")
    as_json = output_of(ctx) == output.JSON
    progress = output.Progress()

    def print_event(event: Any) -> None:
        if as_json:
            progress.line(json.dumps(to_dict(event), sort_keys=True, ensure_ascii=False))
        else:
            progress.line(_deploy.event_text(event))

    running = current.outcome == RUNNING
    if not follow and running and current.last_seq == 0:
        return  # nothing written yet, and not asked to wait
    request = deployer_pb2.WatchRequest(deployment_id=deployment_id, after_seq=0)
    final = _deploy.follow_deployment(
        ctx,
        app_name,
        lambda: deployer.stream("Watch", request),
        print_event,
        stop_after_seq=None if follow or not running else current.last_seq,
    )
    if follow:
        if not as_json:
            _deploy.finish(final, progress)
        elif final is None or final.outcome != SUCCEEDED:
            raise CliError(_deploy.outcome_error(final) if final else "no deployment seen")
