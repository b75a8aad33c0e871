"""Showing a deployment as it happens: event lines, the outcome, Ctrl-C to detach."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click
from relman.v1 import deployer_pb2
from relman_common.lifecycle import Outcome
from relman_common.pb_enums import from_pb, to_pb

from relman_cli import output
from relman_cli.commands._common import client, context_flags
from relman_cli.commands._messages import when
from relman_cli.errors import CliError, Detached
from relman_cli.follow import (
    SUCCEEDED,
    Deployment,
    DeploymentEvent,
    DeploymentFollower,
    DeploymentUpdate,
    StreamLost,
)

Updates = Iterator[DeploymentUpdate]
RUNNING = to_pb(Outcome.RUNNING)

_OUTCOME_WORDS = {
    Outcome.ROLLED_BACK: "rolled back",
    Outcome.FAILED: "failed",
    Outcome.CANCELLED: "was cancelled",
}


def outcome_error(deployment: Deployment) -> str:
    """``deployment DXXXX rolled back: <reason>`` for a deployment that did not succeed."""
    outcome = from_pb(Outcome, deployment.outcome)
    words = _OUTCOME_WORDS.get(outcome) if outcome is not None else None
    if words is None:
        words = f"ended {outcome.value if outcome is not None else 'unknown'}"
    text = f"deployment {deployment.id} {words}"
    return f"{text}: {deployment.reason}" if deployment.reason else text


def follow_deployment(
    ctx: click.Context,
    app: str,
    open_stream: Callable[[], Updates],
    on_event: Callable[[DeploymentEvent], None],
    on_first: Callable[[Deployment], None] | None = None,
    stop_after_seq: int | None = None,
) -> Deployment | None:
    """Print every event of the deployment ``open_stream`` starts (or watches).

    Returns the last Deployment message seen. Ctrl-C detaches: the deployment goes on.
    """
    deployer = client(ctx).deployer
    first_seen = False

    def on_deployment(deployment: Deployment) -> None:
        nonlocal first_seen
        if not first_seen:
            first_seen = True
            if on_first is not None:
                on_first(deployment)

    # A broken stream is reopened on the next Deployer of the rack's list (any one serves
    # Watch; a Promote repeated with the command's request id re-attaches to its deployment).
    def open_watch(deployment_id: str, after_seq: int) -> Updates:
        deployer.next_endpoint()
        return watch(ctx, deployment_id, after_seq)

    def restart() -> Updates:
        deployer.next_endpoint()
        return open_stream()

    follower = DeploymentFollower(
        open_watch,
        deployer.error,
        on_event,
        on_deployment,
        reconnect_for=deployer.retry_for,
        stop_after_seq=stop_after_seq,
        restart=restart,
    )
    try:
        return follower.follow(open_stream())
    except KeyboardInterrupt:
        raise Detached(detach_message(ctx, app, follower.seen.deployment_id)) from None
    except StreamLost as err:
        deployment_id = follower.seen.deployment_id
        if not deployment_id:  # it never started, as far as anyone can tell: say why
            raise CliError(err.reason) from None
        hint = f"relman deployments logs {deployment_id} --follow {context_flags(ctx, app)}"
        raise CliError(f"{err}; the deployment goes on: follow it with: {hint}") from None


def watch(ctx: click.Context, deployment_id: str, after_seq: int = 0) -> Updates:
    """The Watch stream of a deployment, from the event after ``after_seq``."""
    request = deployer_pb2.WatchRequest(deployment_id=deployment_id, after_seq=after_seq)
    return client(ctx).deployer.stream(lambda stub: stub.Watch, request)


def event_text(event: DeploymentEvent) -> str:
    """``2019-01-01T00:00:51Z system/k8s/web Scaled up replica set web-745f845dc to 1``."""
    return output.event_line(when(event, "time"), event.source, event.message)


def printer(progress: output.Progress) -> Callable[[DeploymentEvent], None]:
    return lambda event: progress.line(event_text(event))


def detach_message(ctx: click.Context, app: str, deployment_id: str) -> str:
    flags = context_flags(ctx, app)
    if not deployment_id:
        return f"Detached; the deployment goes on. See it with: relman deployments {flags}"
    return (
        f"Detached; deployment {deployment_id} goes on. "
        f"Follow it with: relman deployments logs {deployment_id} --follow {flags}"
    )


def finish(deployment: Deployment | None, progress: output.Progress) -> None:
    """``OK`` when the release became active; otherwise the reason, as an error."""
    if deployment is not None and deployment.outcome == SUCCEEDED:
        progress.line("OK")
        return
    if deployment is None:
        raise CliError("the Deployer closed the stream before the deployment started")
    raise CliError(outcome_error(deployment))


def promote(
    ctx: click.Context,
    app: str,
    release_id: str,
    progress: output.Progress,
    *,
    force: bool = False,
    timeout: int = 0,
) -> None:
    """``Promoting R...``, the events, then ``OK`` (or the failure as a CliError)."""
    deployer = client(ctx).deployer
    request = deployer_pb2.PromoteRequest(
        app=app, release_id=release_id, force=force, timeout_seconds=timeout
    )
    if release_id:
        progress.line(f"Promoting {release_id}...")

    def on_first(deployment: Deployment) -> None:
        if not release_id:
            progress.line(f"Promoting {deployment.release_id}...")

    def start() -> Updates:
        return deployer.stream(lambda stub: stub.Promote, request)

    finish(follow_deployment(ctx, app, start, printer(progress), on_first), progress)


def rollback(
    ctx: click.Context,
    app: str,
    release_id: str,
    progress: output.Progress,
    *,
    timeout: int = 0,
    force: bool = False,
) -> None:
    """``Rolling back to R... OK, <the copy>``, the events, then ``OK`` (or the failure)."""
    deployer = client(ctx).deployer
    request = deployer_pb2.RollbackRequest(
        app=app, release_id=release_id, timeout_seconds=timeout, force=force
    )
    progress.start(f"Rolling back to {release_id}")

    def on_first(deployment: Deployment) -> None:
        progress.ok(deployment.release_id)

    def start() -> Updates:
        return deployer.stream(lambda stub: stub.Rollback, request)

    finish(follow_deployment(ctx, app, start, printer(progress), on_first), progress)


def wait_for_running(ctx: click.Context, app: str, progress: output.Progress) -> None:
    """``Waiting for deployment D... OK`` while the app has a running deployment (promote
    --wait, as Convox waits before it promotes); returns at once when it has none."""
    request = deployer_pb2.ListDeploymentsRequest(app=app, limit=1)
    found = client(ctx).deployer.call(lambda stub: stub.ListDeployments, request)
    if not found.deployments or found.deployments[0].outcome != RUNNING:
        return
    running = found.deployments[0]
    progress.start(f"Waiting for deployment {running.id}")
    for _ in watch(ctx, running.id, running.last_seq):
        pass  # the stream ends when the deployment does
    progress.ok()
