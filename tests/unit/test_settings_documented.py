"""Every setting is defined once (relman_common.settings), documented in the README's
Configuration table, and the only environment the services and the CLI read.

A new variable read anywhere under services/ fails here until it is a setting; a new setting
fails here until the README's table has its row, with the same default.
"""

from __future__ import annotations

import argparse
import doctest
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import relman_common.setting
from relman_common import settings
from relman_common.setting import (
    NUMBER,
    OPTIONAL_PATH,
    PATH,
    SECRET,
    SWITCH,
    TEXT,
    WHOLE_NUMBER,
    Setting,
    add_flags,
)
from relman_common.settings import CLI, DEPLOYER, RELEASE, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SOURCES = sorted(
    path
    for path in (ROOT / "services").rglob("*.py")
    if (ROOT / "services" / "proto") not in path.parents
)
BY_ENV = {setting.env: setting for setting in SETTINGS}

# Names that look like settings but are not read from the process environment.
NOT_SETTINGS = {
    "RELMAN_SIM_FAIL": "a key of a release's env, read by the sim backend from the release",
}
# Variables the platform defines, read by the services or the CLI but not relman settings.
PLATFORM = {
    "HOME": "the CLI finds ~/.config/relman/racks.yml",
    "XDG_CONFIG_HOME": "the CLI finds $XDG_CONFIG_HOME/relman/racks.yml",
    "USER": "the CLI's actor name",
    "LOGNAME": "the CLI's actor name when USER is unset",
    "KUBERNETES_SERVICE_HOST": "set by Kubernetes in a pod: the backend uses in-cluster config",
    "GRPC_VERBOSITY": "gRPC's own logging, which the CLI quiets unless it is set",
}

MENTION = re.compile(r"\bRELMAN_[A-Z0-9_]*[A-Z0-9]\b")
ENV_READ = re.compile(
    r"""(?:environ\.get|environ\.setdefault|environ\.pop|getenv)\(\s*["']([A-Za-z0-9_]+)["']"""
    r"""|environ\[\s*["']([A-Za-z0-9_]+)["']\s*\]"""
)


def readme_table() -> dict[str, tuple[str, str]]:
    """variable -> (meaning, default) from the README's Configuration table, backticks
    dropped; fails on a row that does not name exactly one variable, or names one twice."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Configuration' section"
    rows: dict[str, tuple[str, str]] = {}
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")]
    assert len(lines) > 2, "the Configuration section has no table"
    for line in lines[2:]:  # after the header and the |---| line
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a row of the Configuration table needs 3 cells: {line}"
        name = re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])
        assert name, f"a row of the Configuration table must name one `VARIABLE`: {line}"
        assert name.group(1) not in rows, f"{name.group(1)} has two rows in the README's table"
        rows[name.group(1)] = (cells[1], cells[2].replace("`", ""))
    return rows


def suggested_row(setting: Setting[Any]) -> str:
    default = setting.shown_default
    shown = f"`{default}`" if default == str(setting.default) else default
    return f"| `{setting.env}` | {setting.help} | {shown} |"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_is_in_the_readme_with_its_default(setting: Setting[Any]) -> None:
    table = readme_table()
    assert setting.env in table, (
        f"{setting.env} is a setting but not in README.md's Configuration table; add a row "
        f"like\n{suggested_row(setting)}"
    )
    shown = table[setting.env][1]
    assert shown == setting.shown_default, (
        f"README.md shows the default of {setting.env} as {shown!r}; "
        f"relman_common.settings says {setting.shown_default!r}"
    )


def test_the_readme_table_names_only_settings() -> None:
    unknown = sorted(set(readme_table()) - set(BY_ENV))
    assert not unknown, (
        f"README.md's Configuration table names {', '.join(unknown)}, which "
        "relman_common.settings does not define"
    )


def test_every_relman_variable_named_in_the_source_is_a_setting() -> None:
    """Reads, messages and docs alike: telling a user to set a variable that is not a
    setting is as wrong as reading one."""
    stray = [
        f"{path.relative_to(ROOT)}:{number}: {name}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for name in MENTION.findall(line)
        if name not in BY_ENV and name not in NOT_SETTINGS
    ]
    assert not stray, "not settings in relman_common.settings:\n" + "\n".join(stray)


def test_every_variable_read_from_the_environment_is_a_setting() -> None:
    known = set(BY_ENV) | {s.fallback for s in SETTINGS if s.fallback} | set(PLATFORM)
    stray = [
        f"{path.relative_to(ROOT)}:{number}: {name}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in ENV_READ.finditer(line)
        for name in match.groups()
        if name and name not in known
    ]
    assert not stray, "read from the environment but not settings:\n" + "\n".join(stray)


def test_kubeconfig_is_the_fallback_of_relman_kubeconfig() -> None:
    assert settings.KUBECONFIG.fallback == "KUBECONFIG"
    assert "$KUBECONFIG" in settings.KUBECONFIG.shown_default


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_says_what_applies_when_unset(setting: Setting[Any]) -> None:
    assert setting.shown_default, f"{setting.env}: give it a default or say what unset means"
    assert setting.programs <= {RELEASE, DEPLOYER, CLI}, setting.env
    assert setting.programs, f"{setting.env} is read by no program"


@pytest.mark.parametrize("program", [RELEASE, DEPLOYER])
def test_a_service_setting_is_a_flag_unless_it_is_a_secret(program: str) -> None:
    """SPEC: each setting is a flag of the service and an environment variable. Secrets are
    variables only: a flag's value is visible to anyone who can list processes."""
    only_variables = [
        s.env for s in SETTINGS if program in s.env_readers and program not in s.flags
    ]
    assert [env for env in only_variables if BY_ENV[env].kind is not SECRET] == []


SAMPLES: dict[Any, tuple[str, str]] = {
    # kind -> (value of the variable, value given as the flag)
    TEXT: ("from-env", "from-flag"),
    NUMBER: ("2.5", "4.5"),
    WHOLE_NUMBER: ("7", "9"),
    PATH: ("/from/env", "/from/flag"),
    OPTIONAL_PATH: ("/from/env", "/from/flag"),
}
FLAGS = [
    pytest.param(setting, program, flag, id=f"{program}{flag}")
    for setting in SETTINGS
    for program, flag in setting.flags.items()
]


@pytest.mark.parametrize(("setting", "program", "flag"), FLAGS)
def test_each_flag_defaults_from_its_variable_and_wins_over_it(
    setting: Setting[Any], program: str, flag: str
) -> None:
    def parse(environ: dict[str, str], argv: list[str]) -> Any:
        parser = argparse.ArgumentParser()
        add_flags(parser, program, SETTINGS, environ=environ)
        return vars(parser.parse_args(argv))[flag.removeprefix("--").replace("-", "_")]

    assert parse({}, []) == setting.default
    if setting.kind is SWITCH:
        assert parse({setting.env: "off"}, []) is False
        assert parse({setting.env: "off"}, [flag]) is True
        return
    from_env, from_flag = SAMPLES[setting.kind]
    assert parse({setting.env: from_env}, []) == setting.kind.convert(from_env)
    assert parse({setting.env: from_env}, [flag, from_flag]) == setting.kind.convert(from_flag)
    assert parse({setting.env: ""}, []) == setting.default  # empty counts as unset


@pytest.mark.parametrize(("setting", "program", "flag"), FLAGS)
def test_each_flag_help_names_its_variable(setting: Setting[Any], program: str, flag: str) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, program, SETTINGS, environ={})
    text = " ".join(parser.format_help().split())
    assert f"(env {setting.env}" in text, f"{program} {flag}"


def test_a_bad_variable_names_itself() -> None:
    with pytest.raises(ValueError, match=r"^RELMAN_LEASE_TTL must be a number, not 'soon'$"):
        settings.LEASE_TTL.value({"RELMAN_LEASE_TTL": "soon"})
    with pytest.raises(ValueError, match=r"^RELMAN_AUTH must be on or off, not 'maybe'$"):
        settings.AUTH.value({"RELMAN_AUTH": "maybe"})


def test_a_variable_outside_its_choices_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    with pytest.raises(SystemExit) as done:
        add_flags(
            parser,
            DEPLOYER,
            SETTINGS,
            choices={"backend": ("sim", "kubernetes")},
            environ={"RELMAN_BACKEND": "k8s"},
        )
    assert done.value.code == 2
    assert "RELMAN_BACKEND must be one of sim, kubernetes, not 'k8s'" in capsys.readouterr().err


@pytest.mark.parametrize("module", [relman_common.setting, settings], ids=lambda m: m.__name__)
def test_the_settings_doctests(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


def test_settings_import_nothing_heavy() -> None:
    """The CLI imports the settings on every command."""
    code = (
        "import sys, relman_common.settings, relman_common.setting; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert loaded.isdisjoint({"grpc", "sqlalchemy", "argparse", "yaml", "cryptography", "click"})
