"""Domain rules of the Release service, as plain tables: no database, no gRPC."""

from __future__ import annotations

import pytest
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.secretbox import SecretBox
from relman_release.domain import composition
from relman_release.domain.env import NO_CHANGE, apply_env_change, diff_env, validate_change
from relman_release.domain.manifest import parse_manifest, validate_images
from relman_release.domain.names import validate_app_name, validate_env_key
from relman_release.domain.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_token,
    encode_token,
    page_limit,
)
from relman_release.store.codec import decode_env, encode_env, serialize_env

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

FULL_MANIFEST = """\
environment: [FOO, BAR=default]
services:
  web:
    build: .
    command: bin/web
    port: 5000
    health: /health
    scale: {count: 2}
    deployment: {minimum: 25, maximum: 150}
  worker:
    image: registry.example/worker:1.4
    command: [bin/worker, --fast]
    health:
      path: /ready
      grace: 0
      interval: 10
      timeout: 3
"""


def test_a_full_manifest_parses_into_services_with_their_settings() -> None:
    manifest = parse_manifest(FULL_MANIFEST)
    assert [(e.key, e.default) for e in manifest.environment] == [("FOO", None), ("BAR", "default")]
    web, worker = manifest.services["web"], manifest.services["worker"]
    assert (web.build, web.command, web.port, web.health.path) == (".", "bin/web", 5000, "/health")
    assert (web.count, web.minimum, web.maximum) == (2, 25, 150)
    assert web.needs_built_image
    assert worker.image == "registry.example/worker:1.4"
    assert worker.command == ["bin/worker", "--fast"]
    assert (worker.health.path, worker.health.grace, worker.health.interval) == ("/ready", 0, 10)
    assert (worker.count, worker.minimum, worker.maximum) == (1, 50, 200)
    assert not worker.needs_built_image


@pytest.mark.parametrize("text", ["", "# nothing\n", "services:\n", "services: {}\n"])
def test_an_empty_manifest_has_no_services(text: str) -> None:
    assert parse_manifest(text).empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "services:\n  web:\n    image: x\n    scale: {count: 0}\n",
            "manifest line 4: services.web.scale.count must be a positive integer",
        ),
        (
            "services:\n  web:\n    image: x\n    scale:\n      count: two\n",
            "manifest line 5: services.web.scale.count must be a positive integer",
        ),
        (
            "services:\n  web:\n    image: x\n    scale: {count: true}\n",
            "manifest line 4: services.web.scale.count must be a positive integer",
        ),
        (
            "services:\n  web:\n    port: 70000\n",
            "manifest line 3: services.web.port must be a port number from 1 to 65535",
        ),
        (
            "services:\n  web:\n    deployment: {minimum: 120}\n",
            "manifest line 3: services.web.deployment.minimum must be an integer from 0 to 100",
        ),
        (
            "services:\n  web:\n    deployment:\n      maximum: 50\n",
            "manifest line 4: services.web.deployment.maximum must be an integer from 100 to 1000",
        ),
        (
            "services:\n  web:\n    imgae: x\n",
            "manifest line 3: unknown key services.web.imgae (expected one of:",
        ),
        ("servcies:\n  web: {}\n", "manifest line 1: unknown key servcies"),
        ("services:\n  Web: {}\n", 'manifest line 2: invalid service name "Web"'),
        (
            "services:\n  web:\n    health: ready\n",
            "manifest line 3: services.web.health must be a path starting with /",
        ),
        (
            "services:\n  web:\n    command: {a: b}\n",
            "manifest line 3: services.web.command must be text or a list of text",
        ),
        ("services:\n  web: [1, 2]\n", "manifest line 2: services.web must be a mapping"),
        ("services: [web]\n", "manifest line 1: services must be a mapping of service names"),
        ("- a\n- b\n", "manifest line 1: the manifest must be a mapping"),
        ("environment: [FOO, 1BAD=x]\n", 'manifest line 1: environment: invalid env key "1BAD"'),
        ("environment:\n  - FOO\n  - {a: b}\n", "manifest line 3: environment entries must be"),
        (
            "services:\n  web:\n    image: x\n  web:\n    image: y\n",
            'manifest line 4: duplicate key "web"',
        ),
        ("services:\n  web:\n    image: [unclosed\n", "manifest line 4: invalid YAML"),
        ("services:\n  web:\n\timage: x\n", "manifest line 3: invalid YAML"),
    ],
)
def test_invalid_manifests_are_refused_with_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_manifest(text)
    assert str(err.value).startswith(message), str(err.value)


def test_images_are_required_for_services_that_build_or_name_no_image() -> None:
    manifest = parse_manifest("services:\n  web:\n    build: .\n  api: {}\n  db:\n    image: pg\n")
    with pytest.raises(InvalidArgument, match="no image given for service api, web"):
        validate_images(manifest, {})
    assert validate_images(manifest, {"web": "r/web:1", "api": "r/api:1"}) == {
        "api": "r/api:1",
        "web": "r/web:1",
    }
    # A service with its own image may still be given one.
    assert "db" in validate_images(manifest, {"web": "w", "api": "a", "db": "r/db:2"})


def test_images_for_services_not_in_the_manifest_are_refused() -> None:
    manifest = parse_manifest("services:\n  web:\n    image: x\n")
    with pytest.raises(InvalidArgument, match="not in the manifest: ghost"):
        validate_images(manifest, {"ghost": "r/ghost:1"})
    with pytest.raises(InvalidArgument, match="invalid image reference for service web"):
        validate_images(manifest, {"web": "has space"})


# --- composition -----------------------------------------------------------------------------


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
        ("R1", "R1", "", "active"),
        ("R1", "R1", "rolled-back", "active"),
        ("R2", "R1", "running", "promoting"),
        ("R2", "", "running", "promoting"),
        ("R2", "R1", "rolled-back", "failed"),
        ("R2", "R1", "failed", "failed"),
        ("R2", "R1", "succeeded", ""),
        ("R2", "R1", "cancelled", ""),
        ("R2", "R1", "", ""),
        ("R2", "", "", ""),
    ],
)
def test_release_status_rule(release_id: str, active: str, outcome: str, status: str) -> None:
    assert composition.release_status(release_id, active, outcome) == status


def test_rollback_copy_is_described_with_the_release_it_copies() -> None:
    assert composition.rollback_description("RBCDEFGHIJK") == "rollback to RBCDEFGHIJK"


@pytest.mark.parametrize("outcome", ["", "done", "Running", "rolled_back"])
def test_unknown_deployment_outcomes_are_refused(outcome: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid deployment outcome"):
        composition.validate_outcome(outcome)


def test_release_without_a_build_has_no_manifest() -> None:
    from datetime import UTC, datetime

    from relman_release.domain.model import Release

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
    assert page_limit(0) == DEFAULT_LIMIT == 10
    assert page_limit(3) == 3
    assert page_limit(10**6) == MAX_LIMIT
    with pytest.raises(InvalidArgument):
        page_limit(-1)
