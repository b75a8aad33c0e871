"""``relman builds``: list, inspect and follow builds; export one, import one (an exported
build, or a manifest plus images)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click
from relman.v1 import release_pb2
from relman_common.lifecycle import BuildStatus
from relman_common.pb_enums import word

from relman_cli import output
from relman_cli.commands._common import (
    announce_release,
    client,
    limit_of,
    need_app,
    output_of,
    utcnow,
)
from relman_cli.commands._messages import Columns, printer, table, to_dict, when
from relman_cli.commands._options import (
    PAGED,
    follows,
    listing_group,
    makes_release,
    options,
    shows,
)
from relman_cli.errors import CliError

DEFAULT_MANIFESTS = ("relman.yml", "convox.yml")
IMPORT_SOURCE_ERROR = (
    "--file imports an exported build; --manifest, --image, --description and --git-sha "
    "describe a build made elsewhere: give one or the other"
)

Build = release_pb2.Build


def list_result(builds: Sequence[Build], now: datetime) -> output.Table:
    columns: Columns[Build] = [
        ("ID", lambda b: b.id),
        ("STATUS", lambda b: word(BuildStatus, b.status)),
        ("RELEASE", lambda b: b.release_id),
        ("STARTED", lambda b: output.ago(when(b, "started") or when(b, "created"), now)),
        ("ELAPSED", lambda b: output.elapsed(when(b, "started"), when(b, "ended"))),
        ("DESCRIPTION", lambda b: b.description),
    ]
    return table(builds, columns)


def info_result(build: Build, now: datetime) -> output.Info:
    """Convox's rows first, in its order and words (``Started  2 days ago``, ``Elapsed  2m0s``),
    then what relman adds: the failure's reason, the git sha, the source, the images, the exact
    times and the log's length."""
    images = "\n".join(f"{svc}={build.images[svc]}" for svc in sorted(build.images))
    started = when(build, "started") or when(build, "created")
    rows = [
        ("Id", build.id),
        ("Status", word(BuildStatus, build.status)),
        ("Release", build.release_id),
        ("Description", build.description),
        ("Started", output.ago(started, now)),
        ("Elapsed", output.elapsed(when(build, "started"), when(build, "ended"))),
        ("Reason", build.reason),
        ("Git Sha", build.git_sha),
        ("Source", build.source_sha256),
        ("Images", images),
        ("Created", output.rfc3339(when(build, "created"))),
        ("Ended", output.rfc3339(when(build, "ended"))),
        ("Log Lines", str(build.log_lines)),
    ]
    # A reason only for a failed build; a source only for one built here.
    shown = [(k, v) for k, v in rows if v or k not in ("Reason", "Source")]
    return output.Info(shown, to_dict(build))


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


@listing_group("builds", PAGED, help="List an app's builds; show, follow, export or import one.")
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
    return info_result(client(ctx).release.call(lambda stub: stub.GetBuild, request), utcnow())


@builds.command("logs")
@follows("build_id", "Keep following until the build ends.")
def logs(ctx: click.Context, build_id: str, follow: bool) -> None:
    """Print a build's log; with --follow, until the build ends (exit 1 if it failed).

    With -o json, one JSON object per line of the log.
    """
    from relman_cli.commands import _build_logs

    show = printer(output.Progress(), output_of(ctx) == output.JSON, _build_logs.text)
    final = _build_logs.follow_build(ctx, need_app(ctx), build_id, show, until_done=follow)
    if follow and final is not None and final.status == release_pb2.BUILD_STATUS_FAILED:
        raise CliError(_build_logs.failure(final) or "build failed")


@builds.command("export")
@click.argument("build_id")
@click.option(
    "-f", "--file", "path", default=None, metavar="FILE", help="Default: stdout, if not a terminal."
)
@options("app", "rack")
@click.pass_context
def export(ctx: click.Context, build_id: str, path: str | None) -> None:
    """Write a build (its manifest, description and images) to a .tgz file."""
    from relman_cli.commands import _archives

    _archives.export(ctx, need_app(ctx), build_id, path)


@builds.command("import")
@click.option(
    "-f",
    "--file",
    "path",
    default=None,
    metavar="FILE",
    help="A build exported with `builds export` (- for stdin).",
)
@click.option("--manifest", "manifest_path", default=None, help="Manifest file (YAML).")
@click.option("--image", "images", multiple=True, metavar="SERVICE=REF", help="A service's image.")
@click.option("--description", default=None, help="Default: from the clean git tree here.")
@click.option("--git-sha", default="", help="Default: HEAD of the clean git tree here.")
@makes_release
@click.pass_context
def import_(
    ctx: click.Context,
    path: str | None,
    manifest_path: str | None,
    images: tuple[str, ...],
    description: str | None,
    git_sha: str,
    promote: bool,
    id_only: bool,
) -> None:
    """Import a build: one exported with `builds export` (--file), or one made elsewhere (a
    manifest and one image per service).

    It also creates a release: the build with the environment of the app's latest release.
    """
    name = need_app(ctx)
    progress = output.Progress(id_only=id_only)
    if path is not None:
        if manifest_path or images or description is not None or git_sha:
            raise CliError(IMPORT_SOURCE_ERROR)
        from relman_cli.commands import _archives

        # Convox's line: ``Importing build... OK, R``.
        response = _archives.import_archive(ctx, name, path, progress, quiet=id_only)
        progress.ok(response.release.id)
        if response.warning:
            output.warn(response.warning)
        announce_release(
            ctx, name, response.release.id, progress, id_only=id_only, promote=promote, line=False
        )
        return
    # Convox's `builds import-image` ends with these two lines, as `build` does.
    response = _import_images(ctx, name, manifest_path, images, description, git_sha, progress)
    if response.warning:
        output.warn(response.warning)
    progress.line(f"Build: {response.build.id}")
    announce_release(ctx, name, response.release.id, progress, id_only=id_only, promote=promote)


def _import_images(
    ctx: click.Context,
    name: str,
    manifest_path: str | None,
    images: tuple[str, ...],
    description: str | None,
    git_sha: str,
    progress: output.Progress,
) -> release_pb2.ImportBuildResponse:
    from relman_cli.git import build_description

    cwd = Path.cwd()
    manifest = read_manifest(manifest_path, cwd)
    image_map = parse_images(images)
    if description is None:
        description, git_sha = build_description(cwd, git_sha)
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
    return response
