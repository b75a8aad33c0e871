"""``relman deployments``: every promotion of an app, its outcome and its event log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import click
from relman.v1 import deployer_pb2
from relman_common.lifecycle import Kind, Outcome
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands import _deploy
from relman_cli.commands._common import client, limit_of, need_app, output_of, utcnow
from relman_cli.commands._diagnostics import diagnostics_lines
from relman_cli.commands._messages import Columns, printer, table, to_dict, when
from relman_cli.commands._options import PAGED, follows, listing_group, shows
from relman_cli.errors import CliError
from relman_cli.follow import RUNNING, SUCCEEDED

Deployment = deployer_pb2.Deployment


def list_result(deployments: Sequence[Deployment], now: datetime) -> output.Table:
    columns: Columns[Deployment] = [
        ("ID", lambda d: d.id),
        ("RELEASE", lambda d: d.release_id),
        ("OUTCOME", lambda d: word(Outcome, d.outcome)),
        ("ACTOR", lambda d: d.actor),
        ("STARTED", lambda d: output.ago(when(d, "started"), now)),
        ("ENDED", lambda d: output.ago(when(d, "ended"), now)),
    ]
    return table(deployments, columns)


def info_result(d: Deployment, pruned: bool = False) -> output.Lines:
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
        ("Lock Override", d.lock_override),
    ]
    optional = ("Rollback Of", "Lock Override")
    shown = [(k, v) for k, v in rows if v or k not in optional]
    data = to_dict(d)
    if pruned:  # the history stays; its release went (releases prune)
        shown = [(k, f"{v} (pruned)" if k == "Release" else v) for k, v in shown]
        data = {**data, "release_pruned": True}
    return output.Lines(output.info(shown) + diagnostics_lines(d), data)


@listing_group(
    "deployments", PAGED, help="List an app's deployments, newest first, or look into one."
)
def deployments(ctx: click.Context) -> output.Table:
    """List an app's deployments, newest first."""
    request = deployer_pb2.ListDeploymentsRequest(app=need_app(ctx), limit=limit_of(ctx))
    response = client(ctx).deployer.call(lambda stub: stub.ListDeployments, request)
    return list_result(response.deployments, utcnow())


def _get(ctx: click.Context, deployment_id: str) -> Deployment:
    request = deployer_pb2.GetDeploymentRequest(id=deployment_id)
    return client(ctx).deployer.call(lambda stub: stub.GetDeployment, request)


@deployments.command("info")
@click.argument("deployment_id")
@shows
def info(ctx: click.Context, deployment_id: str) -> output.Lines:
    """Show a deployment: what it deployed, who started it, how it ended, and how each
    service's pods stood (counts, pod states, warnings, failing pods' last log lines)."""
    found = _get(ctx, deployment_id)
    return info_result(found, pruned=_pruned(ctx, found))


def _pruned(ctx: click.Context, d: Deployment) -> bool:
    """Whether the deployment's release was pruned (False when that cannot be told)."""
    from relman.v1 import release_pb2

    request = release_pb2.GetReleaseRequest(app=d.app, id=d.release_id)
    try:
        client(ctx).release.call(lambda stub: stub.GetRelease, request, timeout=5)
    except CliError as err:
        return err.code == "NOT_FOUND" and "was pruned" in str(err)
    return False


@deployments.command("logs")
@follows("deployment_id", "Keep following until it ends.")
def logs(ctx: click.Context, deployment_id: str, follow: bool) -> None:
    """Print a deployment's events; with --follow, until it ends (exit 1 unless it succeeded).

    With -o json, one JSON object per event per line.
    """
    current = _get(ctx, deployment_id)
    app_name = current.app or (ctx.params.get("app") or "")
    as_json = output_of(ctx) == output.JSON
    progress = output.Progress()
    print_event = printer(progress, as_json, _deploy.event_text)
    running = current.outcome == RUNNING
    if not follow and running and current.last_seq == 0:
        return  # nothing written yet, and not asked to wait
    final = _deploy.follow_deployment(
        ctx,
        app_name,
        lambda: _deploy.watch(ctx, deployment_id),
        print_event,
        stop_after_seq=None if follow or not running else current.last_seq,
    )
    if follow:
        if not as_json:
            _deploy.finish(final, progress)
        elif final is None or final.outcome != SUCCEEDED:
            raise CliError(_deploy.outcome_error(final) if final else "no deployment seen")
