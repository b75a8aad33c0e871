"""The pure rules of SPEC 9: which releases and builds a prune removes, the lock's words, and
webhook signatures, patterns and retry delays. Their doc examples are run here too."""

from __future__ import annotations

import doctest
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from relman_common import locks
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.lifecycle import BuildStatus, Outcome
from relman_release.domain import retention, webhooks
from relman_release.domain.model import App, Release
from relman_release.domain.retention import IMAGE, SOURCE, BuildFacts, plan_prune

T0 = datetime(2019, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def release(n: int, build: str, **kw: object) -> Release:
    return Release(f"R{n}", "web", build, {}, "", at(n), "alice", **kw)  # type: ignore[arg-type]


def build(
    name: str, minute: int, status: BuildStatus = BuildStatus.COMPLETE, **kw: object
) -> BuildFacts:
    return BuildFacts(
        name,
        status,
        at(minute),
        str(kw.get("source", "")),
        kw.get("images", {}),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("module", [locks, retention, webhooks], ids=lambda m: m.__name__)
def test_doc_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_keep_must_be_at_least_one() -> None:
    app = App("web", T0, "alice")
    with pytest.raises(InvalidArgument, match="keep at least 1"):
        plan_prune(app, [], [], keep=0)


def test_the_newest_are_kept_and_every_protected_release_stays_whatever_keep_says() -> None:
    app = App(
        "web",
        T0,
        "alice",
        active_release_id="R2",
        previous_active_release_id="R1",
        latest_release_id="R9",
    )
    releases = [
        release(9, "B9"),
        release(8, "B8", last_deployment_outcome=Outcome.RUNNING),
        release(7, "B7"),
        release(6, "B6", pinned=True),
        release(5, "B5", last_deployment_outcome=Outcome.FAILED),
        release(2, "B2"),
        release(1, "B1"),
        release(0, "B0"),
    ]
    plan = plan_prune(app, releases, [], keep=1)
    assert plan.releases == ("R7", "R5", "R0")
    assert plan.kept == 5


def test_a_build_goes_only_when_no_kept_release_uses_it_and_never_while_it_runs() -> None:
    app = App("web", T0, "alice", latest_release_id="R5")
    releases = [release(5, "BSHARED"), release(4, "BSHARED"), release(3, "BOLD")]
    builds = [
        build("BSHARED", 3, source="s1", images={"web": "web@sha256:" + "a" * 64}),
        build("BOLD", 2, source="s2", images={"web": "web@sha256:" + "b" * 64, "db": "pg:16"}),
        build("BFAILED", 1, BuildStatus.FAILED, source="s3"),
        build("BRUNNING", 0, BuildStatus.RUNNING, source="s4"),
        build("BNEW", 9, BuildStatus.FAILED),  # newer than the oldest kept: stays to be read
    ]
    plan = plan_prune(app, releases, builds, keep=1)
    assert plan.releases == ("R4", "R3")
    assert plan.builds == ("BOLD", "BFAILED")
    # Only digest references are images relman may have stored; tags are never deleted.
    assert plan.garbage == ((SOURCE, "s2"), (IMAGE, "web@sha256:" + "b" * 64), (SOURCE, "s3"))


def test_the_lock_refuses_with_its_words_unless_forced() -> None:
    lock = locks.AppLock("bob", at(0), "quarter close")
    with pytest.raises(FailedPrecondition) as refused:
        locks.check_unlocked(lock, force=False)
    assert str(refused.value) == "app is locked by bob at 2019-01-01T00:00:00Z: quarter close"
    assert refused.value.reason == "APP_LOCKED"
    assert locks.check_unlocked(lock, force=True).startswith("forced past the lock by bob")
    assert locks.check_unlocked(None, force=False) == ""


def test_retry_delays_double_with_jitter_up_to_ten_minutes() -> None:
    lows = [webhooks.retry_delay(n, lambda: 0.0) for n in range(1, 16)]
    highs = [webhooks.retry_delay(n, lambda: 0.999999) for n in range(1, 16)]
    assert lows[:3] == [0.5, 1.0, 2.0] and round(highs[0], 3) == 1.5
    assert all(b == min(600.0, 2 * a) for a, b in itertools.pairwise(lows))
    assert max(highs) == 600.0 and lows[-1] == 600.0


def test_an_event_is_given_up_after_a_day() -> None:
    assert not webhooks.gives_up(T0, T0 + timedelta(hours=23, minutes=59))
    assert webhooks.gives_up(T0, T0 + timedelta(hours=24))


def test_patterns_must_match_a_known_event_and_default_to_all() -> None:
    assert webhooks.check_patterns([]) == ("*",)
    assert webhooks.check_patterns(["deployment.*", "deployment.*"]) == ("deployment.*",)
    for bad in ("deploy", "DEPLOYMENT.*", "x" * 70):
        with pytest.raises(InvalidArgument, match="invalid event pattern"):
            webhooks.check_patterns([bad])


def test_the_body_is_compact_sorted_json_with_the_event_fields() -> None:
    body = webhooks.event_body("EABCDEFGHIJ", "build.failed", "web", "bob", T0, {"reason": "x"})
    assert body == (
        b'{"actor":"bob","app":"web","created":"2019-01-01T00:00:00Z",'
        b'"data":{"reason":"x"},"id":"EABCDEFGHIJ","type":"build.failed"}'
    )
