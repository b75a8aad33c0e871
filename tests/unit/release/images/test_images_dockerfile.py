"""Reading Dockerfiles for the local builder: errors that name the line, Docker's variable and
config rules, and what the local builder refuses (naming the docker builder)."""

from __future__ import annotations

import doctest
from types import ModuleType
from typing import Any

import pytest
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_release.images import dockerfile, reference
from relman_release.images.base import INVALID_DOCKERFILE, UNSUPPORTED_INSTRUCTION
from relman_release.images.dockerfile import parse_dockerfile
from relman_release.images.recipe import DEFAULT_PATH, Recipe, apply, read_base


def recipe(text: str, base_config: dict[str, Any] | None = None, **build_args: str) -> Recipe:
    """What the local builder reads of ``text``: its base, then the rest."""
    instructions = parse_dockerfile(text)
    read_base(instructions, build_args)
    return apply(instructions, base_config or {}, build_args, lambda _: None)


@pytest.mark.parametrize("module", [dockerfile, reference])
def test_doc_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# --- syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM scratch\nCOPPY a /a\n", 'Dockerfile line 2: unknown instruction: "COPPY"'),
        ("FROM scratch\nCOPY\n", "Dockerfile line 2: COPY needs arguments"),
        ("FROM scratch\nCOPY", "Dockerfile line 2: COPY needs arguments"),
        ("# comment\nCOPY a /a\nFROM scratch\n", "Dockerfile line 2: COPY before FROM"),
        ("# only a comment\n", "the Dockerfile has no FROM instruction"),
        ("", "the Dockerfile has no FROM instruction"),
        ("FROM scratch\nENV A=1 B\n", "Dockerfile line 2: Syntax error"),
        (
            "FROM scratch\nEXPOSE http\n",
            'Dockerfile line 2: EXPOSE: not a port[/tcp|udp|sctp]: "http"',
        ),
        (
            "FROM scratch\nCOPY onlyone\n",
            "Dockerfile line 2: COPY needs a source and a destination",
        ),
        ("FROM scratch\nCOPY --chmod=99x a /a\n", 'Dockerfile line 2: --chmod="99x"'),
        ("FROM scratch\nCOPY --bogus=1 a /a\n", 'Dockerfile line 2: COPY has no flag --"bogus"'),
        ("FROM a b c d\n", "Dockerfile line 1: expected FROM [--platform=P] image [AS name]"),
    ],
)
def test_a_dockerfile_it_cannot_read_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        recipe(text)
    assert str(err.value).startswith(message)
    assert err.value.reason == INVALID_DOCKERFILE


def test_continuation_lines_and_comments_make_one_instruction_on_its_first_line() -> None:
    found = parse_dockerfile("FROM scratch\n# note\nCOPY a \\\n  # inside\n  b /c\n")
    assert [(i.line, i.keyword) for i in found] == [(1, "FROM"), (3, "COPY")]
    assert found[1].value.split() == ["a", "b", "/c"]


# --- FROM and ARG ----------------------------------------------------------------------------


def test_args_before_from_choose_the_base_and_a_build_arg_overrides_their_default() -> None:
    text = "ARG REG=127.0.0.1:5000\nARG TAG=1\nFROM $REG/base:${TAG} AS build\n"
    assert read_base(parse_dockerfile(text), {}).image == "127.0.0.1:5000/base:1"
    assert read_base(parse_dockerfile(text), {"TAG": "2"}).image == "127.0.0.1:5000/base:2"


def test_platform_flag_is_kept_for_choosing_from_an_index() -> None:
    base = read_base(parse_dockerfile("FROM --platform=linux/arm64 base\n"), {})
    assert (base.image, base.platform) == ("base", "linux/arm64")


def test_a_stage_arg_takes_the_global_value_and_env_wins_over_arg() -> None:
    made = recipe(
        "ARG V=global\nFROM scratch\nARG V\nARG W=w-$V\nENV OUT=$V-$W\nENV W=env\nENV AFTER=$W\n"
    )
    env = made.config["Env"]
    assert "OUT=global-w-global" in env
    assert "AFTER=env" in env


def test_build_args_override_defaults_and_unused_ones_are_reported() -> None:
    made = recipe("FROM scratch\nARG A=default\nENV A_IS=$A\n", A="given", NOPE="x")
    assert "A_IS=given" in made.config["Env"]
    assert made.unused_args == ["NOPE"]


def test_arg_values_are_not_kept_in_the_image_config() -> None:
    made = recipe("FROM scratch\nARG TOKEN\nLABEL a=b\n", TOKEN="secret")
    assert "secret" not in repr(made.config)
    assert all("secret" not in line for line in made.history)


# --- config ----------------------------------------------------------------------------------


def test_config_instructions_set_the_image_config_as_docker_does() -> None:
    made = recipe(
        "FROM scratch\n"
        'ENV APP=/srv/app GREETING="hello world"\n'
        "WORKDIR $APP\n"
        "WORKDIR sub\n"
        "USER 1000:1000\n"
        "EXPOSE 8080 53/udp\n"
        'LABEL org.example.name="demo app" version=1\n'
        'ENTRYPOINT ["/srv/app/run"]\n'
        "CMD --serve --port=8080\n"
    )
    assert made.config == {
        "Env": ["APP=/srv/app", "GREETING=hello world", f"PATH={DEFAULT_PATH}"],
        "WorkingDir": "/srv/app/sub",
        "User": "1000:1000",
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Labels": {"org.example.name": "demo app", "version": "1"},
        "Entrypoint": ["/srv/app/run"],
        "Cmd": ["/bin/sh", "-c", "--serve --port=8080"],
    }
    assert made.workdirs == ["/srv/app", "/srv/app/sub"]


def test_the_base_config_is_kept_and_entrypoint_clears_the_base_cmd() -> None:
    base = {"Env": ["PATH=/bin", "LANG=C"], "Cmd": ["sh"], "Labels": {"from": "base"}}
    made = recipe('FROM base\nENV LANG=C.UTF-8\nLABEL mine=1\nENTRYPOINT ["/app"]\n', base)
    assert made.config["Env"] == ["PATH=/bin", "LANG=C.UTF-8"]
    assert made.config["Labels"] == {"from": "base", "mine": "1"}
    assert "Cmd" not in made.config


def test_a_cmd_set_before_entrypoint_stays() -> None:
    made = recipe('FROM base\nCMD ["x"]\nENTRYPOINT ["/app"]\n', {"Cmd": ["sh"]})
    assert made.config["Cmd"] == ["x"]


def test_copy_destinations_follow_workdir_and_flags_are_read() -> None:
    made = recipe(
        "FROM scratch\nWORKDIR /app\nCOPY --chown=1000 --chmod=750 a b ./\n"
        'COPY ["with space", "/abs"]\nADD c d\n'
    )
    first, second, third = made.copies
    assert (first.sources, first.dest, first.into_dir) == (("a", "b"), "/app", True)
    assert (first.owner, first.mode) == ((1000, 1000), 0o750)
    assert (second.sources, second.dest, second.into_dir) == (("with space",), "/abs", False)
    assert (third.keyword, third.dest) == ("ADD", "/app/d")


# --- what the local builder refuses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("FROM scratch\nRUN make\n", "does not support RUN"),
        ("FROM scratch\nHEALTHCHECK CMD true\n", "does not support HEALTHCHECK"),
        ("FROM scratch\nVOLUME /data\n", "does not support VOLUME"),
        ("FROM a AS one\nFROM scratch\n", "a multi-stage Dockerfile (FROM on lines 1, 2)"),
        ("FROM scratch\nCOPY --from=build /x /x\n", "COPY --from copies from another stage"),
        ("FROM scratch\nADD https://example.com/a.tgz /a\n", 'ADD "https://example.com/a.tgz"'),
        ("FROM scratch\nADD git@example.com:a/b.git /src\n", 'ADD "git@example.com:a/b.git"'),
        ("FROM scratch\nCOPY --chown=app:app a /a\n", "numeric ids only"),
    ],
)
def test_what_the_local_builder_cannot_do_names_the_docker_builder(text: str, words: str) -> None:
    with pytest.raises(FailedPrecondition) as err:
        recipe(text)
    assert words in str(err.value)
    assert "use the docker builder (RELMAN_BUILDER=docker)" in str(err.value)
    assert err.value.reason == UNSUPPORTED_INSTRUCTION


def test_each_step_is_logged_as_docker_logs_it() -> None:
    lines: list[str] = []
    instructions = parse_dockerfile('FROM scratch\nENV A=1\nCMD ["x"]\n')
    apply(instructions, {}, {}, lines.append)
    assert lines == ["Step 2/3 : ENV A=1", 'Step 3/3 : CMD ["x"]']
