"""Showing a build's log as it is written: each line once, across broken streams (resumed
after the last line shown); Ctrl-C detaches and the build goes on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click
from relman.v1 import build_pb2, release_pb2

from relman_cli.commands._common import client, context_flags
from relman_cli.errors import CliError, Detached
from relman_cli.follow import Build, BuildLogFollower, BuildLogLine, BuildUpdate, StreamLost

COMPLETE = release_pb2.BUILD_STATUS_COMPLETE
FAILED = release_pb2.BUILD_STATUS_FAILED


def text(line: BuildLogLine) -> str:
    """A log line as the builder wrote it."""
    return line.text


def stream(
    ctx: click.Context, app: str, build_id: str, after_seq: int, follow: bool
) -> Iterator[BuildUpdate]:
    """BuildLogs: the build, its lines after ``after_seq``; with ``follow``, until it ends."""
    request = build_pb2.BuildLogsRequest(app=app, id=build_id, after_seq=after_seq, follow=follow)
    return client(ctx).builds.stream(lambda stub: stub.BuildLogs, request)


def follow_build(
    ctx: click.Context,
    app: str,
    build_id: str,
    on_line: Callable[[BuildLogLine], None],
    *,
    until_done: bool = True,
    after: str = "",
) -> Build | None:
    """Show the build's log (to its end with ``until_done``, else what is written so far);
    the last Build message seen. ``after`` tells a detached user what will not happen now
    (`` (its release is not promoted)``)."""
    builds = client(ctx).builds

    def reopen(after_seq: int) -> Iterator[BuildUpdate]:
        return stream(ctx, app, build_id, after_seq, until_done)

    follower = BuildLogFollower(build_id, reopen, builds.error, on_line, until_done=until_done)
    hint = f"relman builds logs {build_id} --follow {context_flags(ctx, app)}"
    try:
        return follower.follow(reopen(0))
    except KeyboardInterrupt:
        raise Detached(
            f"Detached; build {build_id} goes on{after}. Follow it with: {hint}"
        ) from None
    except StreamLost as err:
        raise CliError(f"{err}; the build goes on: follow it with: {hint}") from None


def failure(build: Build | None) -> str | None:
    """Why ``build`` is not a complete build with a release, or None when it is."""
    if build is None:
        return "the Release service ended the build's log before naming the build"
    if build.status == FAILED:
        return f"build failed: {build.reason}" if build.reason else "build failed"
    if build.status != COMPLETE:
        return f"build {build.id} has not finished"
    if not build.release_id:
        return f"build {build.id} completed without a release"
    return None
