"""What a Deployer's report about a deployment changes: pure rules, no storage.

The app's *current* deployment is the one started last. Its reports count: they record the
outcome on its release and, on success, make that release the app's active release. A report
about an older deployment changes nothing (it arrived late), and a report that repeats what
is recorded changes nothing either (reports are retried).

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2019, 1, 1, tzinfo=UTC)
>>> app = App("web", t0, "alice", current_deployment_id="DB", current_deployment_started=t0)
>>> release = Release("R1", "web", "B1", {}, "", t0, "alice")
>>> old = DeploymentReport("DA", "web", "R1", Outcome.SUCCEEDED, "", t0 - timedelta(seconds=1))
>>> judge_report(app, release, old)
ReportEffect(current=False, becomes_current=False, record=False, activate=False)
>>> new = DeploymentReport("DB", "web", "R1", Outcome.SUCCEEDED, "", t0)
>>> judge_report(app, release, new)
ReportEffect(current=True, becomes_current=False, record=True, activate=True)
"""

from __future__ import annotations

from dataclasses import dataclass

from relman_common.lifecycle import Outcome, outcome_may_follow

from relman_release.domain.model import App, DeploymentReport, Release


@dataclass(frozen=True)
class ReportEffect:
    # The report is about the app's current deployment (or one started after it).
    current: bool
    # It is about a deployment started after the current one, which it replaces.
    becomes_current: bool
    # The release's last deployment and outcome are to be written.
    record: bool
    # The release becomes the app's active release.
    activate: bool


IGNORED = ReportEffect(current=False, becomes_current=False, record=False, activate=False)


def is_newer(app: App, report: DeploymentReport) -> bool:
    """Whether ``report``'s deployment started after the app's current one (ties: by id)."""
    started = app.current_deployment_started
    if started is None:
        return True
    return (report.started, report.deployment_id) > (started, app.current_deployment_id)


def judge_report(app: App, release: Release, report: DeploymentReport) -> ReportEffect:
    same = report.deployment_id == app.current_deployment_id
    if not same and not is_newer(app, report):
        return IGNORED
    before = release.last_deployment_outcome
    if release.last_deployment_id != report.deployment_id:
        before = None  # the release's last record is of another deployment
    record = outcome_may_follow(before, report.outcome)
    # Only a success that is recorded activates: an ended deployment never changes (a late
    # SUCCEEDED after FAILED of the same deployment is stale).
    activate = (
        record
        and report.outcome is Outcome.SUCCEEDED
        and app.active_release_id != report.release_id
    )
    return ReportEffect(current=True, becomes_current=not same, record=record, activate=activate)
