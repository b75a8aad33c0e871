"""Domain rules of the Release service, as plain tables: no database, no gRPC."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pytest
from relman.v1 import release_pb2, types_pb2
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.lifecycle import (
    BuildStatus,
    Kind,
    Outcome,
    ReleaseStatus,
    TokenKind,
    release_status,
)
from relman_common.manifest import (
    HTTP,
    HTTPS,
    BuildSpec,
    EnvSpec,
    Health,
    Port,
    ReleaseCommand,
    Scale,
    Service,
    parse_manifest,
)
from relman_common.pb_enums import from_pb, to_pb, word
from relman_common.secretbox import SecretBox
from relman_common.vocabulary import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    page_limit,
    validate_app_name,
    validate_env_key,
)
from relman_release.domain import composition
from relman_release.domain.deployments import judge_report
from relman_release.domain.env import NO_CHANGE, apply_env_change, diff_env, validate_change
from relman_release.domain.model import App, DeploymentReport, Release
from relman_release.domain.paging import decode_token, encode_token
from relman_release.store.codec import decode_env, encode_env, serialize_env
from support.release_manifests import BAD_MANIFESTS, FULL_MANIFEST

# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "myapp", "my-app-2", "a" + "b" * 29])
def test_valid_app_names_are_accepted(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize("name", ["", "MyApp", "1app", "-app", "my_app", "a" * 31, "my app", "é"])
def test_invalid_app_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidArgument, match="app name"):
        validate_app_name(name)


@pytest.mark.parametrize("key", ["A", "_", "foo", "FOO_BAR_2", "_x1"])
def test_valid_env_keys_are_accepted(key: str) -> None:
    assert validate_env_key(key) == key


@pytest.mark.parametrize("key", ["", "1BAD", "A-B", "A B", "A=B", "É"])
def test_invalid_env_keys_are_refused_naming_the_key(key: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_env_key(key)
    assert str(err.value) == (
        f'invalid env key "{key}": '
        "keys start with a letter or _ and hold only letters, digits and _"
    )


def test_env_keys_are_at_most_as_long_as_a_kubernetes_secret_key() -> None:
    assert validate_env_key("K" * 253) == "K" * 253
    with pytest.raises(InvalidArgument) as err:
        validate_env_key("K" * 254)
    assert str(err.value) == (
        f'invalid env key "{"K" * 100}…": keys are at most 253 characters '
        "(the longest key of a Kubernetes Secret)"
    )


# --- env changes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "set_", "unset", "replace", "description"),
    [
        ({}, {"FOO": "bar"}, [], False, "env add:FOO"),
        (
            {"C": "1", "D": "x"},
            {"B": "2", "A": "1", "C": "3"},
            ["D"],
            False,
            "env add:A add:B change:C remove:D",
        ),
        ({"Z": "1", "Y": "1"}, {}, ["Z", "Y"], False, "env remove:Y remove:Z"),
        ({"B": "1", "A": "1"}, {"B": "2", "A": "2"}, [], False, "env change:A change:B"),
        ({"A": "1", "B": "2"}, {"B": "3", "C": "4"}, [], True, "env add:C change:B remove:A"),
        ({"b": "1"}, {"a": "1", "B": "1", "_": "1"}, [], False, "env add:B add:_ add:a"),
    ],
)
def test_env_description_lists_adds_then_changes_then_removes_each_sorted(
    current: dict[str, str],
    set_: dict[str, str],
    unset: list[str],
    replace: bool,
    description: str,
) -> None:
    assert apply_env_change(current, set_, unset, replace).description == description


def test_env_change_applies_set_and_unset_to_the_current_env() -> None:
    change = apply_env_change({"A": "1", "B": "2", "C": "3"}, {"A": "9", "D": "4"}, ["B"])
    assert change.env == {"A": "9", "C": "3", "D": "4"}
    assert change.changed


def test_env_replace_makes_the_env_exactly_the_given_set() -> None:
    change = apply_env_change({"A": "1", "B": "2"}, {"B": "2", "C": "3"}, [], replace=True)
    assert change.env == {"B": "2", "C": "3"}
    assert apply_env_change({"A": "1"}, {}, [], replace=True).env == {}


def test_env_values_keep_equals_signs_newlines_and_unicode() -> None:
    value = "a=b=c\nline two\n  ünïcødé ✓"
    assert apply_env_change({}, {"K": value}).env == {"K": value}


@pytest.mark.parametrize(
    ("current", "set_"),
    [({"A": "1"}, {"A": "1"}), ({"A": "1", "B": "2"}, {"B": "2"})],
)
def test_env_change_that_sets_existing_values_changes_nothing(
    current: dict[str, str], set_: dict[str, str]
) -> None:
    change = apply_env_change(current, set_)
    assert not change.changed
    assert change.description == NO_CHANGE
    assert change.env == current


def test_env_replace_with_the_same_env_changes_nothing() -> None:
    assert not apply_env_change({"A": "1"}, {"A": "1"}, [], replace=True).changed


def test_unsetting_a_key_that_is_not_set_names_the_key() -> None:
    with pytest.raises(InvalidArgument, match="can not unset NOPE: key is not set"):
        apply_env_change({"A": "1"}, {}, ["NOPE"])


@pytest.mark.parametrize(
    ("set_", "unset", "replace", "message"),
    [
        ({"1BAD": "x"}, [], False, 'invalid env key "1BAD"'),
        ({}, ["BAD-KEY"], False, 'invalid env key "BAD-KEY"'),
        ({"A": "x"}, ["A"], False, "key A is both set and unset"),
        ({"A": "x"}, ["B"], True, "can not also unset"),
        ({}, [], False, "nothing to change"),
        ({"A": "nul\x00"}, [], False, "NUL"),
    ],
)
def test_incoherent_env_changes_are_refused(
    set_: dict[str, str], unset: list[str], replace: bool, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_change(set_, unset, replace)


def test_diff_env_sorts_each_group_by_key_and_keeps_old_and_new_values() -> None:
    diff = diff_env(
        {"A": "1", "B": "2", "D": "4", "Z": "0"}, {"B": "3", "C": "5", "A": "1", "E": "6"}
    )
    assert diff.added == [("C", "5"), ("E", "6")]
    assert diff.changed == [("B", "2", "3")]
    assert diff.removed == [("D", "4"), ("Z", "0")]


def test_env_codec_round_trips_any_text_and_sorts_keys() -> None:
    env = {"Z": "=\n=", "A": "é\x01", "M": ""}
    box = SecretBox(SecretBox.generate_key())
    assert decode_env(encode_env(env, box, "RBCDEFGHIJK"), box, "RBCDEFGHIJK") == env
    serialized = serialize_env(env)
    assert serialized.index('"A"') < serialized.index('"M"') < serialized.index('"Z"')


# --- manifest --------------------------------------------------------------------------------


def test_the_full_spec_manifest_parses_into_services_with_every_setting() -> None:
    manifest = parse_manifest(FULL_MANIFEST)
    assert manifest.environment == (EnvSpec("FOO"), EnvSpec("BAR", "default"))
    assert manifest.names == ("web", "worker", "api", "cache")  # in the manifest's order
    assert manifest.release == ReleaseCommand(("bin/migrate", "--all"), "worker", 300)

    web = manifest.service("web")
    assert web == Service(
        name="web",
        build=BuildSpec(".", "Dockerfile"),
        command=("bin/web",),
        port=Port(5443, HTTPS),
        ports=(5001, 5002),
        health=Health(path="/health", grace=5, interval=5, timeout=4),
        scale=Scale(count=2, max=2, cpu=250, memory=512),
        # The app's entries, then the service's own, which win for the same key.
        environment=(EnvSpec("FOO"), EnvSpec("WORKERS", "2"), EnvSpec("BAR", "web")),
        minimum=25,
        maximum=150,
        termination_grace=45,
        internal=False,
    )
    assert (web.replicas, web.max_unavailable_percent, web.max_surge_percent) == (2, 75, 50)
    assert web.env_defaults({"FOO": "x", "WORKERS": "8"}) == {"BAR": "web"}
    assert web.needs_built_image

    worker = manifest.service("worker")
    assert worker == Service(
        name="worker",
        build=BuildSpec("worker", "Dockerfile.worker"),
        command=("bin/worker", "--fast"),
        port=Port(8080, HTTP),
        health=Health(path="/ready", grace=0, interval=10, timeout=3),
        scale=Scale(count=1, max=4),
        environment=(EnvSpec("FOO"), EnvSpec("BAR", "default")),
        internal=True,
    )
    # Defaults: 50 / 200 percent, 30 s of grace.
    assert (worker.minimum, worker.maximum, worker.termination_grace) == (50, 200, 30)
    assert (worker.replicas, worker.max_unavailable_percent, worker.max_surge_percent) == (
        1,
        50,
        100,
    )

    api, cache = manifest.service("api"), manifest.service("cache")
    assert (api.image, api.port, api.build) == ("registry.example/api:old", Port(3000), None)
    assert (cache.image, cache.port, cache.command) == ("registry.example/cache:1.4", None, ())
    assert not api.needs_built_image and not cache.needs_built_image
    assert manifest.missing_env({}) == ["FOO"]
    assert manifest.missing_env({"FOO": ""}) == []


@pytest.mark.parametrize(
    ("value", "port"),
    [("5000", Port(5000, HTTP)), ("http:80", Port(80, HTTP)), ("https:443", Port(443, HTTPS))],
)
def test_a_port_is_a_number_with_an_optional_scheme(value: str, port: Port) -> None:
    manifest = parse_manifest(f"services:\n  web:\n    image: x\n    port: {value}\n")
    assert manifest.services[0].port == port


def test_a_release_block_defaults_to_the_first_service_and_ten_minutes() -> None:
    manifest = parse_manifest(
        "services:\n  web:\n    image: x\n  worker:\n    image: y\n"
        "release:\n  command: [bin/migrate, --all]\n"
    )
    assert manifest.release == ReleaseCommand(("bin/migrate", "--all"), "web", 600)


def test_a_service_with_no_settings_has_the_defaults() -> None:
    (web,) = parse_manifest("services:\n  web:\n").services
    assert web == Service(name="web")
    assert (web.health, web.scale, web.port, web.build) == (
        Health("/", 5, 5, 4),
        Scale(),
        None,
        None,
    )
    assert web.needs_built_image


@pytest.mark.parametrize("text", ["", "# nothing\n", "services:\n", "services: {}\n"])
def test_an_empty_manifest_has_no_services(text: str) -> None:
    assert parse_manifest(text).empty


@pytest.mark.parametrize(("text", "message"), BAD_MANIFESTS)
def test_invalid_manifests_are_refused_with_line_path_and_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_manifest(text)
    assert str(err.value) == message
    assert (err.value.reason, err.value.field) == ("INVALID_MANIFEST", "manifest")


def test_manifest_errors_quote_little_of_a_huge_input() -> None:
    long = "k" * 100_000
    for text in [
        f"services:\n  web:\n    ? {long}\n    : 1\n",  # an explicit key may be that long
        f"? {long}\n: 1\n",
        f"services:\n  web:\n    {long}: 1\n",
        f"services:\n  web:\n    image: x\n    health:\n      ? {long}\n      : 1\n"
        f"      ? {long}\n      : 2\n",
        f"services:\n  web:\n    build: {long}/../../x\n",
        f"services:\n  web:\n    image: x\nrelease:\n  command: x\n  service: {long}\n",
    ]:
        with pytest.raises(InvalidArgument) as err:
            parse_manifest(text)
        assert str(err.value).startswith("manifest line "), str(err.value)[:300]
        assert len(str(err.value)) < 300, str(err.value)[:300]


@pytest.mark.parametrize(
    ("args", "sources"),
    [
        (("RB", "RE", False, False), ("RB", "RE")),
        (("", "RE", True, False), ("", "RE")),
        (("RB", "", False, True), ("RB", "")),
        (("", "", True, True), ("", "")),
    ],
)
def test_create_from_accepts_the_four_forms(
    args: tuple[str, str, bool, bool], sources: tuple[str, str]
) -> None:
    chosen = composition.choose_sources(*args)
    assert (chosen.build_from, chosen.env_from) == sources


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "RE", False, False), composition.NEED_BUILD_SOURCE),
        (("RB", "RE", True, False), composition.NEED_BUILD_SOURCE),
        (("", "", False, False), composition.NEED_BUILD_SOURCE),
        (("RB", "", False, False), composition.NEED_ENV_SOURCE),
        (("RB", "RE", False, True), composition.NEED_ENV_SOURCE),
    ],
)
def test_create_from_needs_exactly_one_build_and_one_env_source(
    args: tuple[str, str, bool, bool], message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        composition.choose_sources(*args)
    assert str(err.value) == message


def test_create_from_error_messages_are_the_documented_ones() -> None:
    assert composition.NEED_BUILD_SOURCE == (
        "must specify either --build-from or --use-active-release-build"
    )
    assert (
        composition.NEED_ENV_SOURCE == "must specify either --env-from or --use-active-release-env"
    )


@pytest.mark.parametrize(
    ("release_id", "active", "outcome", "status"),
    [
        ("R1", "R1", None, "active"),
        ("R1", "R1", Outcome.ROLLED_BACK, "active"),
        ("R2", "R1", Outcome.RUNNING, "promoting"),
        ("R2", "", Outcome.RUNNING, "promoting"),
        ("R2", "R1", Outcome.ROLLED_BACK, "failed"),
        ("R2", "R1", Outcome.FAILED, "failed"),
        ("R2", "R1", Outcome.SUCCEEDED, ""),
        ("R2", "R1", Outcome.CANCELLED, ""),
        ("R2", "R1", None, ""),
        ("R2", "", None, ""),
    ],
)
def test_release_status_rule(
    release_id: str, active: str, outcome: Outcome | None, status: str
) -> None:
    assert release_status(release_id, active, outcome) == ReleaseStatus(status)


def test_rollback_copy_is_described_with_the_release_it_copies() -> None:
    assert composition.rollback_description("RBCDEFGHIJK") == "rollback to RBCDEFGHIJK"


@pytest.mark.parametrize("enum", [Outcome, Kind, BuildStatus, ReleaseStatus, TokenKind])
def test_every_lifecycle_word_has_its_proto_enum_value_and_back(enum: type[Enum]) -> None:
    for member in enum:
        value = to_pb(member)
        if member.value == "":
            assert value == 0 and from_pb(enum, value) is None  # ReleaseStatus.NONE
            continue
        assert value != 0
        assert from_pb(enum, value) is member
        assert word(enum, value) == member.value
    assert from_pb(enum, 0) is None and word(enum, 0) == ""
    assert from_pb(enum, 99) is None  # a value of a newer peer


def test_outcome_words_are_the_cli_words() -> None:
    assert word(Outcome, types_pb2.OUTCOME_ROLLED_BACK) == "rolled-back"
    assert to_pb(Outcome.CANCELLED) == types_pb2.OUTCOME_CANCELLED
    assert to_pb(ReleaseStatus.PROMOTING) == release_pb2.RELEASE_STATUS_PROMOTING
    assert to_pb(BuildStatus.COMPLETE) == release_pb2.BUILD_STATUS_COMPLETE
    assert to_pb(None) == 0


# --- deployment reports ----------------------------------------------------------------------

T0 = datetime(2019, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(seconds=1)
EARLIER = T0 - timedelta(seconds=1)


def judged(
    *,
    outcome: Outcome,
    deployment: str = "DBBBBBBBBBB",
    started: datetime = T0,
    current: str = "DBBBBBBBBBB",
    last: tuple[str, Outcome] | None = None,
    active: str = "RAAAAAAAAAA",
) -> tuple[bool, bool, bool, bool]:
    """What a report about release RBBBBBBBBBB changes, for an app whose current deployment
    (started at T0) is ``current`` ("" for none), whose active release is ``active``, and
    whose release's last recorded deployment is ``last``."""
    app = App(
        "web",
        T0,
        "alice",
        active_release_id=active,
        current_deployment_id=current,
        current_deployment_started=T0 if current else None,
    )
    release = Release("RBBBBBBBBBB", "web", "BAAAAAAAAAA", {}, "", T0, "alice")
    if last is not None:
        release = replace(release, last_deployment_id=last[0], last_deployment_outcome=last[1])
    report = DeploymentReport(deployment, "web", release.id, outcome, "", started)
    effect = judge_report(app, release, report)
    return effect.current, effect.becomes_current, effect.record, effect.activate


RUN = Outcome.RUNNING
OK = Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("case", "effect"),
    [
        # The first report of an app: it becomes the current deployment.
        ({"outcome": RUN, "current": ""}, (True, True, True, False)),
        ({"outcome": OK, "current": ""}, (True, True, True, True)),
        # Older than the current deployment: late, changes nothing.
        ({"outcome": OK, "deployment": "DAAAAAAAAAA", "started": EARLIER}, (False,) * 4),
        # Started at the same instant: the larger id is the later one.
        ({"outcome": OK, "deployment": "DAAAAAAAAAA"}, (False,) * 4),
        ({"outcome": RUN, "deployment": "DCCCCCCCCCC"}, (True, True, True, False)),
        # Newer than the current deployment: it becomes the current one.
        (
            {"outcome": RUN, "deployment": "DAAAAAAAAAA", "started": LATER},
            (True, True, True, False),
        ),
        # The current deployment goes on, then succeeds: its release becomes active.
        ({"outcome": OK, "last": ("DBBBBBBBBBB", RUN)}, (True, False, True, True)),
        # Repeats change nothing.
        ({"outcome": RUN, "last": ("DBBBBBBBBBB", RUN)}, (True, False, False, False)),
        (
            {"outcome": OK, "last": ("DBBBBBBBBBB", OK), "active": "RBBBBBBBBBB"},
            (True, False, False, False),
        ),
        # An ended deployment stays ended: a late RUNNING or another ending changes nothing.
        (
            {"outcome": RUN, "last": ("DBBBBBBBBBB", OK), "active": "RBBBBBBBBBB"},
            (True, False, False, False),
        ),
        ({"outcome": OK, "last": ("DBBBBBBBBBB", Outcome.FAILED)}, (True, False, False, False)),
        (
            {"outcome": Outcome.FAILED, "last": ("DBBBBBBBBBB", Outcome.ROLLED_BACK)},
            (True, False, False, False),
        ),
        # The release's last record is of another deployment: this one is recorded.
        ({"outcome": Outcome.FAILED, "last": ("DAAAAAAAAAA", OK)}, (True, False, True, False)),
    ],
)
def test_which_deployment_reports_count(
    case: dict[str, Any], effect: tuple[bool, bool, bool, bool]
) -> None:
    assert judged(**case) == effect


def test_release_without_a_build_has_no_manifest() -> None:
    release = Release("RAAAAAAAAAA", "app", "", {}, "env add:A", datetime.now(UTC), "me")
    with pytest.raises(FailedPrecondition) as err:
        composition.require_build(release)
    assert str(err.value) == "no build for release: RAAAAAAAAAA"


# --- paging ----------------------------------------------------------------------------------


def test_page_tokens_round_trip_and_are_bound_to_listing_and_app() -> None:
    token = encode_token("releases", "myapp", 1234)
    assert decode_token("releases", "myapp", token) == 1234
    assert decode_token("releases", "myapp", "") is None
    for kind, app in [("builds", "myapp"), ("releases", "other")]:
        with pytest.raises(InvalidArgument, match="invalid page_token"):
            decode_token(kind, app, token)


@pytest.mark.parametrize("token", ["garbage!", "djE6cmVsZWFzZXM6bXlhcHA6eA", "x" * 7, "====", "AA"])
def test_damaged_page_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid page_token"):
        decode_token("releases", "myapp", token)


def test_page_limit_defaults_caps_and_refuses_negatives() -> None:
    assert page_limit(0) == DEFAULT_PAGE_SIZE == 10
    assert page_limit(3) == 3
    assert page_limit(10**6) == MAX_PAGE_SIZE == 1000
    with pytest.raises(InvalidArgument):
        page_limit(-1)
