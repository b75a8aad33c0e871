"""``relman builds``: list and inspect builds; import one (a manifest plus images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from relman.v1 import release_pb2
from relman_common.lifecycle import BuildStatus
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

DEFAULT_MANIFESTS = ("relman.yml", "convox.yml")


def list_result(builds: list[Any], now: Any) -> output.Table:
    rows = [
        [
            b.id,
            word(BuildStatus, b.status),
            output.ago(when(b, "started") or when(b, "created"), now),
            output.elapsed(when(b, "started"), when(b, "ended")),
            b.description,
        ]
        for b in builds
    ]
    headers = ["ID", "STATUS", "STARTED", "ELAPSED", "DESCRIPTION"]
    return output.Table(headers, rows, [to_dict(b) for b in builds])


def info_result(build: Any) -> output.Info:
    images = "\n".join(f"{svc}={build.images[svc]}" for svc in sorted(build.images))
    rows = [
        ("Id", build.id),
        ("Status", word(BuildStatus, build.status)),
        ("Description", build.description),
        ("Git Sha", build.git_sha),
        ("Images", images),
        ("Created", output.rfc3339(when(build, "created"))),
        ("Started", output.rfc3339(when(build, "started"))),
        ("Elapsed", output.elapsed(when(build, "started"), when(build, "ended"))),
    ]
    return output.Info(rows, to_dict(build))


def parse_images(values: tuple[str, ...]) -> dict[str, str]:
    """``SERVICE=REF`` pairs; each service once."""
    images: dict[str, str] = {}
    for value in values:
        service, sep, ref = value.partition("=")
        if not sep or not service or not ref:
            raise CliError(f"invalid --image {value!r}: expected SERVICE=IMAGE_REFERENCE")
        if service in images:
            raise CliError(f"--image given twice for service {service}")
        images[service] = ref
    return images


def read_manifest(path: str | None, cwd: Path) -> str:
    if path is None:
        for name in DEFAULT_MANIFESTS:
            if (cwd / name).is_file():
                path = str(cwd / name)
                break
        else:
            names = " or ".join(DEFAULT_MANIFESTS)
            raise CliError(f"no manifest: give --manifest FILE or add {names} here")
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read manifest {path}: {err}") from err


@click.group("builds", invoke_without_command=True)
@app_option
@rack_option
@output_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="How many (default 10).")
@click.pass_context
def builds(
    ctx: click.Context,
    app: str | None,
    rack: str | None,
    output_format: str | None,
    limit: int | None,
) -> None:
    """List an app's builds, or import one."""
    if ctx.invoked_subcommand is None:
        _list(ctx, limit)


@builds.command("list")
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
    """List an app's builds, newest first."""
    _list(ctx, limit)


def _list(ctx: click.Context, limit: int | None) -> None:
    request = release_pb2.ListBuildsRequest(app=need_app(ctx), limit=limit or 0)
    response = client(ctx).release.call("ListBuilds", request)
    output.render(list_result(list(response.builds), utcnow()), output_of(ctx))


@builds.command("info")
@click.argument("build_id")
@app_option
@rack_option
@output_option
@click.pass_context
def info(
    ctx: click.Context,
    build_id: str,
    app: str | None,
    rack: str | None,
    output_format: str | None,
) -> None:
    """Show a build."""
    request = release_pb2.GetBuildRequest(app=need_app(ctx), id=build_id)
    build = client(ctx).release.call("GetBuild", request)
    output.render(info_result(build), output_of(ctx))


@builds.command("import")
@click.option("--manifest", "manifest_path", default=None, help="Manifest file (YAML).")
@click.option("--image", "images", multiple=True, metavar="SERVICE=REF", help="A service's image.")
@click.option("--description", default=None, help="Default: from the clean git tree here.")
@click.option("--git-sha", default="", help="Default: HEAD of the clean git tree here.")
@click.option("--promote", is_flag=True, help="Promote the new release.")
@id_option
@app_option
@rack_option
@click.pass_context
def import_(
    ctx: click.Context,
    manifest_path: str | None,
    images: tuple[str, ...],
    description: str | None,
    git_sha: str,
    promote: bool,
    id_only: bool,
    app: str | None,
    rack: str | None,
) -> None:
    """Import a build made elsewhere: a manifest and one image per service.

    It also creates a release: the build with the environment of the app's latest release.
    """
    from relman_cli.commands import _deploy
    from relman_cli.git import build_description

    name = need_app(ctx)
    cwd = Path.cwd()
    manifest = read_manifest(manifest_path, cwd)
    image_map = parse_images(images)
    if description is None:
        description, git_sha = build_description(cwd, git_sha)
    progress = output.Progress(human_stream(id_only))
    progress.start("Importing build")
    request = release_pb2.ImportBuildRequest(
        app=name,
        manifest=manifest,
        images=image_map,
        description=description,
        git_sha=git_sha,
    )
    response = client(ctx).release.call("ImportBuild", request)
    progress.ok()
    if response.warning:
        output.warn(response.warning)
    progress.line(f"Build: {response.build.id}")
    progress.line(f"Release: {response.release.id}")
    if id_only:
        click.echo(response.release.id)
    if promote:
        _deploy.promote(ctx, name, response.release.id, progress)
