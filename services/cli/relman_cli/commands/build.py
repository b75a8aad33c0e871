"""``relman build`` and ``relman deploy``: from a source directory to a release (and, for
deploy, to that release running)."""

from __future__ import annotations

import click
from relman.v1 import build_pb2, release_pb2

from relman_cli import output
from relman_cli.commands import _build_logs, _source
from relman_cli.commands._common import announce_release, client, need_app, refuse_if_locked
from relman_cli.commands._options import (
    Command,
    Decorator,
    dry_run_options,
    force_option,
    id_option,
    options,
)
from relman_cli.errors import CliError
from relman_cli.follow import Build


def build_options(command: Command) -> Command:
    """``[DIR] --manifest --description --no-cache --id -a -r``."""
    declared: list[Decorator] = [
        click.argument("directory", default=".", metavar="[DIR]"),
        click.option(
            "-m",
            "--manifest",
            default=None,
            metavar="FILE",
            help="The manifest, inside DIR (default: relman.yml or convox.yml).",
        ),
        click.option(
            "-d",
            "--description",
            default=None,
            help="Default: the commit of DIR's clean git tree (build <sha> <subject>).",
        ),
        click.option("--no-cache", is_flag=True, help="Build without cached layers."),
        id_option,
        options("app", "rack"),
    ]
    for option in reversed(declared):
        command = option(command)
    return click.pass_context(command)


def build_from_source(
    ctx: click.Context,
    app: str,
    directory: str,
    *,
    manifest: str | None,
    description: str | None,
    no_cache: bool,
    progress: output.Progress,
    quiet: bool,
    after_detach: str = "",
) -> Build:
    """Package, upload, start the build and show its log; the complete build (it has made a
    release), or the failure as a CliError."""
    from relman_cli.git import build_description

    src = _source.source(directory, manifest)
    # A mistyped app is better said before a large tree is packaged and sent.
    app_request = release_pb2.GetAppRequest(name=app)
    client(ctx).release.call(lambda stub: stub.GetApp, app_request)
    git_sha = ""
    if description is None:
        description, git_sha = build_description(src.root)
    sha256 = _source.package_and_upload(ctx, app, src, progress, quiet=quiet)
    progress.start("Starting build")
    request = build_pb2.CreateBuildRequest(
        app=app,
        source_sha256=sha256,
        manifest_path=src.manifest,
        description=description,
        git_sha=git_sha,
        no_cache=no_cache,
    )
    started = client(ctx).builds.call(lambda stub: stub.CreateBuild, request)
    progress.ok()
    final = _build_logs.follow_build(
        ctx, app, started.id, lambda line: progress.line(_build_logs.text(line)), after=after_detach
    )
    why = _build_logs.failure(final)
    if why is not None:
        raise CliError(why)
    assert final is not None
    progress.line(f"Build: {final.id}")
    return final


def _from_source(name: str, *, promote: bool, doc: str) -> click.Command:
    """``relman build`` (``promote`` False) or ``relman deploy``: one body for both."""

    def run(
        ctx: click.Context,
        directory: str,
        manifest: str | None,
        description: str | None,
        no_cache: bool,
        id_only: bool,
    ) -> None:
        app = need_app(ctx)
        if promote:
            refuse_if_locked(ctx, app)
        progress = output.Progress(id_only=id_only)
        made = build_from_source(
            ctx,
            app,
            directory,
            manifest=manifest,
            description=description,
            no_cache=no_cache,
            progress=progress,
            quiet=id_only,
            after_detach=" (its release will not be promoted)" if promote else "",
        )
        announce_release(ctx, app, made.release_id, progress, id_only=id_only, promote=promote)

    run.__doc__ = doc
    command = build_options(run)
    return click.command(name)(force_option(dry_run_options(command)) if promote else command)


build = _from_source(
    "build",
    promote=False,
    doc="""Build DIR (default: here) into a new build and release of the app.

    Sends DIR as .dockerignore allows (the manifest and its Dockerfiles always), builds one
    image per service with build:, shows the builder's log, and prints the new build and
    release. Exits 1 if the build fails.
    """,
)

deploy = _from_source(
    "deploy",
    promote=True,
    doc="""Build DIR (default: here), then promote the new release and follow it.

    Exits 0 only when the build completed and its release became active everywhere; Ctrl-C
    while it builds leaves the build going on (and its release not promoted).
    """,
)
