"""``relman builds``: list and inspect builds; import one (a manifest plus images)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click
from relman.v1 import release_pb2
from relman_common.lifecycle import BuildStatus
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands._common import announce_release, client, limit_of, need_app, utcnow
from relman_cli.commands._messages import Columns, table, to_dict, when
from relman_cli.commands._options import PAGED, listing_group, makes_release, shows
from relman_cli.errors import CliError

DEFAULT_MANIFESTS = ("relman.yml", "convox.yml")

Build = release_pb2.Build


def list_result(builds: Sequence[Build], now: datetime) -> output.Table:
    columns: Columns[Build] = [
        ("ID", lambda b: b.id),
        ("STATUS", lambda b: word(BuildStatus, b.status)),
        ("STARTED", lambda b: output.ago(when(b, "started") or when(b, "created"), now)),
        ("ELAPSED", lambda b: output.elapsed(when(b, "started"), when(b, "ended"))),
        ("DESCRIPTION", lambda b: b.description),
    ]
    return table(builds, columns)


def info_result(build: Build) -> output.Info:
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


@listing_group("builds", PAGED, help="List an app's builds, or import one.")
def builds(ctx: click.Context) -> output.Table:
    """List an app's builds, newest first."""
    request = release_pb2.ListBuildsRequest(app=need_app(ctx), limit=limit_of(ctx))
    response = client(ctx).release.call(lambda stub: stub.ListBuilds, request)
    return list_result(response.builds, utcnow())


@builds.command("info")
@click.argument("build_id")
@shows
def info(ctx: click.Context, build_id: str) -> output.Info:
    """Show a build."""
    request = release_pb2.GetBuildRequest(app=need_app(ctx), id=build_id)
    return info_result(client(ctx).release.call(lambda stub: stub.GetBuild, request))


@builds.command("import")
@click.option("--manifest", "manifest_path", default=None, help="Manifest file (YAML).")
@click.option("--image", "images", multiple=True, metavar="SERVICE=REF", help="A service's image.")
@click.option("--description", default=None, help="Default: from the clean git tree here.")
@click.option("--git-sha", default="", help="Default: HEAD of the clean git tree here.")
@makes_release
@click.pass_context
def import_(
    ctx: click.Context,
    manifest_path: str | None,
    images: tuple[str, ...],
    description: str | None,
    git_sha: str,
    promote: bool,
    id_only: bool,
) -> None:
    """Import a build made elsewhere: a manifest and one image per service.

    It also creates a release: the build with the environment of the app's latest release.
    """
    from relman_cli.git import build_description

    name = need_app(ctx)
    cwd = Path.cwd()
    manifest = read_manifest(manifest_path, cwd)
    image_map = parse_images(images)
    if description is None:
        description, git_sha = build_description(cwd, git_sha)
    progress = output.Progress(id_only=id_only)
    progress.start("Importing build")
    request = release_pb2.ImportBuildRequest(
        app=name,
        manifest=manifest,
        images=image_map,
        description=description,
        git_sha=git_sha,
    )
    response = client(ctx).release.call(lambda stub: stub.ImportBuild, request)
    progress.ok()
    if response.warning:
        output.warn(response.warning)
    progress.line(f"Build: {response.build.id}")
    announce_release(ctx, name, response.release.id, progress, id_only=id_only, promote=promote)
