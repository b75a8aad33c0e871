"""``relman releases``: list, inspect, compose, compare, promote and roll back releases."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click
from relman.v1 import release_pb2
from relman_common.lifecycle import ReleaseStatus
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands._common import (
    app_option,
    client,
    human_stream,
    id_option,
    need_app,
    output_of,
    output_option,
    rack_option,
    to_dict,
    utcnow,
    when,
)
from relman_cli.errors import CliError

BUILD_SOURCE_ERROR = "must specify either --build-from or --use-active-release-build"
ENV_SOURCE_ERROR = "must specify either --env-from or --use-active-release-env"


def list_result(releases: list[Any], now: datetime) -> output.Table:
    rows = [
        [
            r.id,
            word(ReleaseStatus, r.status),
            r.build_id,
            output.ago(when(r, "created"), now),
            r.description,
        ]
        for r in releases
    ]
    headers = ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"]
    # ListReleases leaves env empty: leave it out rather than show an empty environment.
    data = [{k: v for k, v in to_dict(r).items() if k != "env"} for r in releases]
    return output.Table(headers, rows, data)


def info_result(release: Any, *, mask: bool) -> output.Info:
    rows = [
        ("Id", release.id),
        ("Build", release.build_id),
        ("Created", output.rfc3339(when(release, "created"))),
        ("Actor", release.actor),
        ("Description", release.description),
        ("Env", "\n".join(output.env_lines(dict(release.env), mask=mask))),
    ]
    return output.Info(rows, _release_data(release, mask=mask))


def _release_data(release: Any, *, mask: bool) -> dict[str, Any]:
    data = to_dict(release)
    if mask:
        data["env"] = {key: output.MASK for key in data.get("env", {})}
    return data


def diff_result(diff: Any, *, mask: bool) -> output.Lines:
    """The build line, then ``+`` added, ``~`` changed and ``-`` removed keys."""
    if diff.build_changed:
        lines = [f"Build: {diff.from_build_id or '(none)'} => {diff.to_build_id or '(none)'}"]
    else:
        lines = [f"Build: {diff.to_build_id or '(none)'} (unchanged)"]
    for change in sorted(diff.added, key=lambda c: c.key):
        lines.append(f"+ {change.key}" if mask else f"+ {change.key}={change.new_value}")
    for change in sorted(diff.changed, key=lambda c: c.key):
        shown = f"{change.key}={change.old_value} => {change.new_value}"
        lines.append(f"~ {change.key}" if mask else f"~ {shown}")
    for change in sorted(diff.removed, key=lambda c: c.key):
        lines.append(f"- {change.key}" if mask else f"- {change.key}={change.old_value}")
    if not diff.build_changed and len(lines) == 1:
        lines.append("No environment changes")
    data = to_dict(diff)
    if mask:
        for group in ("added", "changed", "removed"):
            for change in data.get(group, []):
                for side in ("old_value", "new_value"):
                    if change.get(side):
                        change[side] = output.MASK
    return output.Lines(lines, data)


def masked(reveal: bool) -> bool:
    """Env values are hidden from a terminal unless --reveal; piped output shows them."""
    return not reveal and output.is_tty(sys.stdout)


@click.group("releases", invoke_without_command=True)
@app_option
@rack_option
@output_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="How many (default 10).")
@click.pass_context
def releases(
    ctx: click.Context,
    app: str | None,
    rack: str | None,
    output_format: str | None,
    limit: int | None,
) -> None:
    """List an app's releases, newest first, or work with one."""
    if ctx.invoked_subcommand is None:
        _list(ctx, limit)


@releases.command("list")
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
    """List an app's releases, newest first."""
    _list(ctx, limit)


def _list(ctx: click.Context, limit: int | None) -> None:
    request = release_pb2.ListReleasesRequest(app=need_app(ctx), limit=limit or 0)
    response = client(ctx).release.call("ListReleases", request)
    output.render(list_result(list(response.releases), utcnow()), output_of(ctx))


@releases.command("info")
@click.argument("release_id")
@click.option("--reveal", is_flag=True, help="Show env values on a terminal too.")
@app_option
@rack_option
@output_option
@click.pass_context
def info(
    ctx: click.Context,
    release_id: str,
    reveal: bool,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Show a release: its build, description and environment."""
    request = release_pb2.GetReleaseRequest(app=need_app(ctx), id=release_id)
    release = client(ctx).release.call("GetRelease", request)
    output.render(info_result(release, mask=masked(reveal)), output_of(ctx))


@releases.command("manifest")
@click.argument("release_id")
@app_option
@rack_option
@output_option
@click.pass_context
def manifest(
    ctx: click.Context,
    release_id: str,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Print the manifest of a release's build."""
    request = release_pb2.GetReleaseManifestRequest(app=need_app(ctx), id=release_id)
    response = client(ctx).release.call("GetReleaseManifest", request)
    result = output.Raw(response.manifest, {"manifest": response.manifest})
    output.render(result, output_of(ctx))


@releases.command("diff")
@click.argument("from_id")
@click.argument("to_id")
@click.option("--reveal", is_flag=True, help="Show env values on a terminal too.")
@app_option
@rack_option
@output_option
@click.pass_context
def diff(
    ctx: click.Context,
    from_id: str,
    to_id: str,
    reveal: bool,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """What changes from one release to another: build and environment."""
    request = release_pb2.DiffReleasesRequest(app=need_app(ctx), from_id=from_id, to_id=to_id)
    response = client(ctx).release.call("DiffReleases", request)
    output.render(diff_result(response, mask=masked(reveal)), output_of(ctx))


def check_sources(
    build_from: str | None, use_active_build: bool, env_from: str | None, use_active_env: bool
) -> None:
    """Exactly one build source and one env source."""
    if bool(build_from) == use_active_build:
        raise CliError(BUILD_SOURCE_ERROR)
    if bool(env_from) == use_active_env:
        raise CliError(ENV_SOURCE_ERROR)


@releases.command("create-from")
@click.option("--build-from", default=None, metavar="RELEASE", help="Take the build from here.")
@click.option("--env-from", default=None, metavar="RELEASE", help="Take the env from here.")
@click.option("--use-active-release-build", is_flag=True, help="Take the active build.")
@click.option("--use-active-release-env", is_flag=True, help="Take the active env.")
@click.option("--promote", is_flag=True, help="Promote the new release.")
@id_option
@app_option
@rack_option
@click.pass_context
def create_from(
    ctx: click.Context,
    build_from: str | None,
    env_from: str | None,
    use_active_release_build: bool,
    use_active_release_env: bool,
    promote: bool,
    id_only: bool,
    app: str | None,
    rack: str | None,
) -> None:
    """Create a release from one release's build and another's environment."""
    check_sources(build_from, use_active_release_build, env_from, use_active_release_env)
    name = need_app(ctx)
    progress = output.Progress(human_stream(id_only))
    progress.start("Creating release")
    request = release_pb2.CreateReleaseFromRequest(
        app=name,
        build_from=build_from or "",
        env_from=env_from or "",
        use_active_release_build=use_active_release_build,
        use_active_release_env=use_active_release_env,
    )
    release = client(ctx).release.call("CreateReleaseFrom", request)
    progress.ok()
    progress.line(f"Release: {release.id}")
    if id_only:
        click.echo(release.id)
    if promote:
        from relman_cli.commands import _deploy  # only promoting needs the stream follower

        _deploy.promote(ctx, name, release.id, progress)


@releases.command("promote")
@click.argument("release_id", required=False, default="")
@click.option("--force", is_flag=True, help="Allow promoting a release older than the active.")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Roll back when there is no progress for this long (default 600).",
)
@app_option
@rack_option
@click.pass_context
def promote(
    ctx: click.Context,
    release_id: str,
    force: bool,
    timeout: int | None,
    app: str | None,
    rack: str | None,
) -> None:
    """Deploy a release (default: the latest) and follow it until it is active everywhere.

    Exits 0 only when the release became active. Ctrl-C detaches; the deployment goes on.
    """
    from relman_cli.commands import _deploy

    _deploy.promote(
        ctx, need_app(ctx), release_id, output.Progress(), force=force, timeout=timeout or 0
    )


@releases.command("rollback")
@click.argument("release_id")
@click.option(
    "--timeout",
    type=click.IntRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Give up when there is no progress for this long (default 600).",
)
@app_option
@rack_option
@click.pass_context
def rollback(
    ctx: click.Context,
    release_id: str,
    timeout: int | None,
    app: str | None,
    rack: str | None,
) -> None:
    """Copy an old release and promote the copy."""
    from relman.v1 import deployer_pb2

    from relman_cli.commands import _deploy

    name = need_app(ctx)
    progress = output.Progress()
    deployer = client(ctx).deployer
    request = deployer_pb2.RollbackRequest(
        app=name, release_id=release_id, timeout_seconds=timeout or 0
    )
    progress.start(f"Rolling back to {release_id}")

    def on_first(deployment: Any) -> None:
        progress.ok(deployment.release_id)

    final = _deploy.follow_deployment(
        ctx, name, lambda: deployer.stream("Rollback", request), _deploy.printer(progress), on_first
    )
    _deploy.finish(final, progress)
