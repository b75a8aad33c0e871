"""Domain objects to protos (fields to the message fields of their names, by
:func:`relman_common.messages.to_message`). Nothing else lives here."""

from __future__ import annotations

from relman.v1 import (  # type: ignore[import-not-found]
    auth_pb2,
    build_pb2,
    release_pb2,
    types_pb2,
)
from relman_common.clock import as_utc
from relman_common.errors import InvalidArgument
from relman_common.lifecycle import Outcome, TokenKind
from relman_common.locks import AppLock
from relman_common.manifest.proto import release_command_to_pb, service_to_pb
from relman_common.messages import to_message
from relman_common.pb_enums import from_pb, to_pb

from relman_release.app.results import (
    EnvChanged,
    EnvView,
    ImportedBuild,
    Listing,
    ReleaseDiff,
    Reported,
)
from relman_release.app.tokens import CreatedToken
from relman_release.app.webhooks import AddedWebhook
from relman_release.builds.sources import SourceInfo
from relman_release.domain.env import EnvDiff
from relman_release.domain.model import (
    App,
    Build,
    Deployable,
    DeploymentReport,
    LogLine,
    Release,
)
from relman_release.domain.retention import PrunePlan
from relman_release.domain.tokens import ApiToken
from relman_release.domain.webhooks import Delivery, Webhook


def lock_pb(lock: AppLock | None) -> release_pb2.AppLock | None:
    return None if lock is None else to_message(release_pb2.AppLock, lock)


def app_pb(app: App) -> release_pb2.App:
    return to_message(release_pb2.App, app, lock=lock_pb(app.current_lock()))


def apps_pb(apps: list[App]) -> release_pb2.ListAppsResponse:
    return release_pb2.ListAppsResponse(apps=[app_pb(a) for a in apps])


def build_pb(build: Build) -> release_pb2.Build:
    return to_message(release_pb2.Build, build)


def source_info_pb(info: SourceInfo) -> build_pb2.SourceInfo:
    return build_pb2.SourceInfo(sha256=info.sha256, size=info.size, entries=info.entries)


def build_update_pb(item: Build | LogLine) -> build_pb2.BuildUpdate:
    if isinstance(item, Build):
        return build_pb2.BuildUpdate(build=build_pb(item))
    return build_pb2.BuildUpdate(line=to_message(build_pb2.BuildLogLine, item))


def release_pb(release: Release) -> release_pb2.Release:
    return to_message(release_pb2.Release, release)


def builds_pb(listing: Listing[Build]) -> release_pb2.ListBuildsResponse:
    return release_pb2.ListBuildsResponse(
        builds=[build_pb(b) for b in listing.items], next_page_token=listing.next_page_token
    )


def releases_pb(listing: Listing[Release]) -> release_pb2.ListReleasesResponse:
    return release_pb2.ListReleasesResponse(
        releases=[release_pb(r) for r in listing.items], next_page_token=listing.next_page_token
    )


def env_view_pb(view: EnvView) -> release_pb2.GetEnvResponse:
    return release_pb2.GetEnvResponse(env=dict(view.env), release_id=view.release_id)


def imported_build_pb(result: ImportedBuild) -> release_pb2.ImportBuildResponse:
    return release_pb2.ImportBuildResponse(
        build=build_pb(result.build), release=release_pb(result.release), warning=result.warning
    )


def env_changed_pb(result: EnvChanged) -> release_pb2.ChangeEnvResponse:
    pb = release_pb2.ChangeEnvResponse(
        changed=result.changed, description=result.description, warning=result.warning
    )
    if result.release is not None:
        pb.release.CopyFrom(release_pb(result.release))
    return pb


def _env_changes(diff: EnvDiff) -> dict[str, list[release_pb2.EnvChange]]:
    return {
        "added": [release_pb2.EnvChange(key=k, new_value=v) for k, v in diff.added],
        "changed": [
            release_pb2.EnvChange(key=k, old_value=old, new_value=new)
            for k, old, new in diff.changed
        ],
        "removed": [release_pb2.EnvChange(key=k, old_value=v) for k, v in diff.removed],
    }


def release_diff_pb(diff: ReleaseDiff) -> release_pb2.ReleaseDiff:
    return to_message(release_pb2.ReleaseDiff, diff, **_env_changes(diff.env))


def deployable_pb(deployable: Deployable) -> release_pb2.Deployable:
    release = deployable.release
    pb = release_pb2.Deployable(
        release=release_pb(release),
        services=[service_to_pb(s, s.image, release.env) for s in deployable.services],
    )
    if deployable.release_command is not None:
        pb.release_command.CopyFrom(release_command_to_pb(deployable.release_command))
    lock = lock_pb(deployable.lock)
    if lock is not None:
        pb.lock.CopyFrom(lock)
    active = deployable.active
    if active is not None:
        pb.active_release.CopyFrom(release_pb(active))
        pb.active_services.extend(
            service_to_pb(s, s.image, active.env) for s in deployable.active_services
        )
    return pb


def report_from_pb(msg: release_pb2.ReportDeploymentRequest) -> DeploymentReport:
    """The report in ``msg``; InvalidArgument when it says no outcome, or one this service
    does not know (read as RUNNING, it would record an ended deployment as running)."""
    outcome = from_pb(Outcome, msg.outcome)
    if outcome is None:
        if msg.outcome == 0:
            raise InvalidArgument("deployment outcome is required", field="outcome")
        raise InvalidArgument(
            f"invalid deployment outcome {msg.outcome}: use one of "
            + ", ".join(types_pb2.Outcome.Name(to_pb(o)) for o in Outcome),
            field="outcome",
        )
    if not msg.HasField("started"):
        # Deployments are ordered by it: without it a report could not be placed.
        raise InvalidArgument("the deployment's start time is required", field="started")
    try:
        started = as_utc(msg.started.ToDatetime())
    except ValueError:  # outside years 1-9999, or nanos outside 0-999999999
        raise InvalidArgument(
            "invalid start time: a Timestamp of years 1 to 9999 with nanos 0 to 999999999",
            field="started",
        ) from None
    return DeploymentReport(
        deployment_id=msg.deployment_id,
        app=msg.app,
        release_id=msg.release_id,
        outcome=outcome,
        reason=msg.reason,
        started=started,
        actor=msg.actor,
    )


def reported_pb(reported: Reported) -> release_pb2.ReportDeploymentResponse:
    return release_pb2.ReportDeploymentResponse(
        current=reported.current, release=release_pb(reported.release)
    )


def token_pb(token: ApiToken) -> auth_pb2.Token:
    return to_message(auth_pb2.Token, token, kind=to_pb(TokenKind(token.kind)))


def tokens_pb(tokens: list[ApiToken]) -> auth_pb2.ListTokensResponse:
    return auth_pb2.ListTokensResponse(tokens=[token_pb(t) for t in tokens])


def created_token_pb(created: CreatedToken) -> auth_pb2.CreateTokenResponse:
    return auth_pb2.CreateTokenResponse(token=token_pb(created.token), secret=created.secret)


def token_kind_from_pb(value: int) -> str:
    """The kind asked for: "" (a user token) for the unspecified value."""
    kind = from_pb(TokenKind, value)
    if kind is None and value != 0:
        return f"unknown kind {value}"  # refused by the token rules with their own words
    return kind.value if kind is not None else ""


def prune_pb(plan: PrunePlan) -> release_pb2.PruneReleasesResponse:
    return release_pb2.PruneReleasesResponse(
        pruned_release_ids=list(plan.releases), pruned_build_ids=list(plan.builds), kept=plan.kept
    )


def webhook_pb(hook: Webhook) -> release_pb2.Webhook:
    return to_message(release_pb2.Webhook, hook)


def added_webhook_pb(added: AddedWebhook) -> release_pb2.AddWebhookResponse:
    return release_pb2.AddWebhookResponse(webhook=webhook_pb(added.webhook), secret=added.secret)


def webhooks_pb(hooks: list[Webhook]) -> release_pb2.ListWebhooksResponse:
    return release_pb2.ListWebhooksResponse(webhooks=[webhook_pb(h) for h in hooks])


def deliveries_pb(found: list[Delivery]) -> release_pb2.ListWebhookDeliveriesResponse:
    return release_pb2.ListWebhookDeliveriesResponse(
        deliveries=[
            to_message(
                release_pb2.WebhookDelivery,
                d,
                history=[to_message(release_pb2.WebhookAttempt, a) for a in d.history],
            )
            for d in found
        ]
    )
