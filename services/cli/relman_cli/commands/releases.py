"""``relman releases``: list, inspect, compose, compare, promote and roll back releases."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

import click
from relman.v1 import release_pb2
from relman_common.lifecycle import ReleaseStatus
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands._common import (
    announce_release,
    client,
    limit_of,
    need_app,
    refuse_if_locked,
    utcnow,
)
from relman_cli.commands._messages import Columns, table, to_dict, when
from relman_cli.commands._options import (
    INT32_MAX,
    PAGED,
    Decorator,
    at_most,
    dry_run_of,
    dry_run_options,
    listing_group,
    makes_release,
    options,
    shows,
)
from relman_cli.errors import CliError

BUILD_SOURCE_ERROR = "must specify either --build-from or --use-active-release-build"
ENV_SOURCE_ERROR = "must specify either --env-from or --use-active-release-env"

Release = release_pb2.Release


def list_result(releases: Sequence[Release], now: datetime) -> output.Table:
    columns: Columns[Release] = [
        ("ID", lambda r: r.id),
        ("STATUS", lambda r: word(ReleaseStatus, r.status)),
        ("BUILD", lambda r: r.build_id),
        ("CREATED", lambda r: output.ago(when(r, "created"), now)),
        ("DESCRIPTION", lambda r: r.description),
    ]
    # ListReleases leaves env empty: leave it out rather than show an empty environment.
    return table(releases, columns, lambda r: {k: v for k, v in to_dict(r).items() if k != "env"})


def info_result(release: Release, *, mask: bool) -> output.Info:
    rows = [
        ("Id", release.id),
        ("Build", release.build_id),
        ("Created", output.rfc3339(when(release, "created"))),
        ("Actor", release.actor),
        ("Description", release.description),
        ("Env", "\n".join(output.env_lines(dict(release.env), mask=mask))),
    ]
    if release.pinned:
        rows.insert(-1, ("Pinned", "yes"))
    data = to_dict(release)
    if mask:
        data["env"] = {key: output.MASK for key in data.get("env", {})}
    return output.Info(rows, data)


def diff_result(diff: release_pb2.ReleaseDiff, *, mask: bool) -> output.Lines:
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
            for change_data in data.get(group, []):
                for side in ("old_value", "new_value"):
                    if change_data.get(side):
                        change_data[side] = output.MASK
    return output.Lines(lines, data)


def masked(reveal: bool) -> bool:
    """Env values are hidden from a terminal unless --reveal; piped output shows them."""
    return not reveal and output.is_tty(sys.stdout)


@listing_group("releases", PAGED, help="List an app's releases, newest first, or work with one.")
def releases(ctx: click.Context) -> output.Table:
    """List an app's releases, newest first."""
    request = release_pb2.ListReleasesRequest(app=need_app(ctx), limit=limit_of(ctx))
    response = client(ctx).release.call(lambda stub: stub.ListReleases, request)
    return list_result(response.releases, utcnow())


reveal_option = click.option("--reveal", is_flag=True, help="Show env values on a terminal too.")


@releases.command("info")
@click.argument("release_id")
@reveal_option
@shows
def info(ctx: click.Context, release_id: str, reveal: bool) -> output.Info:
    """Show a release: its build, description and environment."""
    request = release_pb2.GetReleaseRequest(app=need_app(ctx), id=release_id)
    release = client(ctx).release.call(lambda stub: stub.GetRelease, request)
    return info_result(release, mask=masked(reveal))


@releases.command("manifest")
@click.argument("release_id")
@shows
def manifest(ctx: click.Context, release_id: str) -> output.Raw:
    """Print the manifest of a release's build."""
    request = release_pb2.GetReleaseManifestRequest(app=need_app(ctx), id=release_id)
    response = client(ctx).release.call(lambda stub: stub.GetReleaseManifest, request)
    return output.Raw(response.manifest, {"manifest": response.manifest})


@releases.command("diff")
@click.argument("from_id")
@click.argument("to_id")
@reveal_option
@shows
def diff(ctx: click.Context, from_id: str, to_id: str, reveal: bool) -> output.Lines:
    """What changes from one release to another: build and environment."""
    request = release_pb2.DiffReleasesRequest(app=need_app(ctx), from_id=from_id, to_id=to_id)
    response = client(ctx).release.call(lambda stub: stub.DiffReleases, request)
    return diff_result(response, mask=masked(reveal))


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
@makes_release
@click.pass_context
def create_from(
    ctx: click.Context,
    build_from: str | None,
    env_from: str | None,
    use_active_release_build: bool,
    use_active_release_env: bool,
    promote: bool,
    id_only: bool,
) -> None:
    """Create a release from one release's build and another's environment."""
    check_sources(build_from, use_active_release_build, env_from, use_active_release_env)
    name = need_app(ctx)
    if promote:
        refuse_if_locked(ctx, name)
    progress = output.Progress(id_only=id_only)
    progress.start("Creating release")
    request = release_pb2.CreateReleaseFromRequest(
        app=name,
        build_from=build_from or "",
        env_from=env_from or "",
        use_active_release_build=use_active_release_build,
        use_active_release_env=use_active_release_env,
    )
    release = client(ctx).release.call(lambda stub: stub.CreateReleaseFrom, request)
    progress.ok()
    announce_release(ctx, name, release.id, progress, id_only=id_only, promote=promote)


def timeout_option(help: str) -> Decorator:
    return click.option(
        "--timeout",
        type=click.IntRange(min=1),
        callback=at_most(INT32_MAX),
        metavar="SECONDS",
        help=help,
    )


@releases.command("promote")
@click.argument("release_id", required=False, default="")
@click.option(
    "--force",
    is_flag=True,
    help="Allow promoting a release older than the active, or while the app is locked.",
)
@click.option("--wait", is_flag=True, help="Wait for a running deployment to end first.")
@timeout_option("Roll back when there is no progress for this long (default 600).")
@dry_run_options
@options("app", "rack", "output")
@click.pass_context
def promote(
    ctx: click.Context, release_id: str, force: bool, wait: bool, timeout: int | None
) -> None:
    """Deploy a release (default: the latest) and follow it until it is active everywhere.

    Exits 0 only when the release became active. Ctrl-C detaches; the deployment goes on.
    With --dry-run, prints what would change against the active release (build, images,
    settings, env, release command; on kubernetes a diff of the objects) and changes nothing.
    """
    flags = dry_run_of(ctx)
    if flags.on:
        from relman_cli.commands import _plan

        _plan.dry_run(
            ctx,
            need_app(ctx),
            release_id,
            force=force,
            timeout=timeout or 0,
            reveal=flags.reveal,
            exit_code=flags.exit_code,
        )
        return
    from relman_cli.commands import _deploy

    app, progress = need_app(ctx), output.Progress()
    if wait:
        _deploy.wait_for_running(ctx, app, progress)
    _deploy.promote(ctx, app, release_id, progress, force=force, timeout=timeout or 0)


@releases.command("rollback")
@click.argument("release_id")
@click.option("--force", is_flag=True, help="Roll back even though the app is locked.")
@timeout_option("Give up when there is no progress for this long (default 600).")
@options("app", "rack")
@click.pass_context
def rollback(ctx: click.Context, release_id: str, force: bool, timeout: int | None) -> None:
    """Copy an old release and promote the copy."""
    from relman_cli.commands import _deploy

    _deploy.rollback(
        ctx, need_app(ctx), release_id, output.Progress(), timeout=timeout or 0, force=force
    )


def prune_result(response: release_pb2.PruneReleasesResponse, *, dry_run: bool) -> output.Lines:
    """``Pruned: R... (n)``, ``Builds: B...``, ``Kept: n releases`` (``Would prune`` ...)."""
    releases_gone = " ".join(response.pruned_release_ids) or "none"
    builds_gone = " ".join(response.pruned_build_ids) or "none"
    verb = "Would prune" if dry_run else "Pruned"
    lines = [
        f"{verb} {len(response.pruned_release_ids)} releases: {releases_gone}",
        f"{verb} {len(response.pruned_build_ids)} builds: {builds_gone}",
        f"Kept {response.kept} releases",
    ]
    return output.Lines(lines, {**to_dict(response), "dry_run": dry_run})


@releases.command("prune")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    required=True,
    callback=at_most(INT32_MAX),
    help="How many of the newest releases to keep.",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@shows
def prune(ctx: click.Context, keep: int, dry_run: bool) -> output.Lines:
    """Remove old releases and the builds (sources, images) only they used.

    The active release, the one active before it, pinned releases and releases being
    deployed always stay.
    """
    request = release_pb2.PruneReleasesRequest(app=need_app(ctx), keep=keep, dry_run=dry_run)
    response = client(ctx).release.call(lambda stub: stub.PruneReleases, request)
    return prune_result(response, dry_run=dry_run)


def _pin(ctx: click.Context, release_id: str, verb: str, pin: bool) -> None:
    progress = output.Progress()
    progress.start(f"{verb} {release_id}")
    request = release_pb2.PinReleaseRequest(app=need_app(ctx), id=release_id)
    client(ctx).release.call(
        (lambda stub: stub.PinRelease) if pin else (lambda stub: stub.UnpinRelease), request
    )
    progress.ok()


@releases.command("pin")
@click.argument("release_id")
@options("app", "rack")
@click.pass_context
def pin(ctx: click.Context, release_id: str) -> None:
    """Keep a release whatever prune says."""
    _pin(ctx, release_id, "Pinning", True)


@releases.command("unpin")
@click.argument("release_id")
@options("app", "rack")
@click.pass_context
def unpin(ctx: click.Context, release_id: str) -> None:
    """Let prune remove a release again."""
    _pin(ctx, release_id, "Unpinning", False)
