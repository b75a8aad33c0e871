"""The CLI's output helpers and input parsing, with plain values."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from relman_cli import config, output
from relman_cli.client import ServiceClient
from relman_cli.commands.builds import IMPORT_SOURCE_ERROR, parse_images
from relman_cli.commands.env import parse_pairs
from relman_cli.commands.releases import BUILD_SOURCE_ERROR, ENV_SOURCE_ERROR, check_sources
from relman_cli.errors import CliError
from relman_cli.git import build_description
from relman_cli.main import main
from support.cli_run import git

NOW = datetime(2019, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_table_pads_columns_to_the_widest_cell_two_spaces_apart() -> None:
    lines = output.table(
        ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"],
        [
            ["RCDEFGHIJK", "", "BABCDEFGHI", "1 minute ago", "env add:FOO"],
            ["RBCDEFGHIJ", "active", "BABCDEFGHI", "5 minutes ago", "build 0a1b2c3d4e5f my commit"],
        ],
    )
    assert lines == [
        "ID          STATUS  BUILD       CREATED        DESCRIPTION",
        "RCDEFGHIJK          BABCDEFGHI  1 minute ago   env add:FOO",
        "RBCDEFGHIJ  active  BABCDEFGHI  5 minutes ago  build 0a1b2c3d4e5f my commit",
    ]


def test_table_leaves_the_last_column_unpadded_and_no_trailing_spaces() -> None:
    lines = output.table(["A", "LONG HEADER"], [["x", ""], ["yyyyy", "z"]])
    assert lines == ["A      LONG HEADER", "x", "yyyyy  z"]
    assert all(line == line.rstrip() for line in lines)


def test_table_with_no_rows_is_just_the_header() -> None:
    assert output.table(["NAME", "STATUS", "RELEASE"], []) == ["NAME  STATUS  RELEASE"]


def test_table_keeps_a_multiline_cell_on_its_row() -> None:
    assert output.table(["ID", "D"], [["R1", "two\nlines"]]) == ["ID  D", "R1  two lines"]


def test_table_rejects_a_row_of_the_wrong_width() -> None:
    with pytest.raises(ValueError):
        output.table(["A", "B"], [["only one"]])


def test_info_block_aligns_values_and_continuation_lines() -> None:
    lines = output.info(
        [
            ("Id", "RCDEFGHIJK"),
            ("Build", "BABCDEFGHI"),
            ("Created", "2019-01-01T00:00:00Z"),
            ("Description", "env add:FOO"),
            ("Env", "BAR=1\nFOO=bar"),
        ]
    )
    assert lines == [
        "Id           RCDEFGHIJK",
        "Build        BABCDEFGHI",
        "Created      2019-01-01T00:00:00Z",
        "Description  env add:FOO",
        "Env          BAR=1",
        "             FOO=bar",
    ]


def test_info_block_row_with_empty_value_has_no_trailing_spaces() -> None:
    assert output.info([("Id", "R1"), ("Env", "")]) == ["Id   R1", "Env"]


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=5), "5 seconds ago"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(minutes=1, seconds=59), "1 minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=3), "3 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=2), "2 days ago"),
        (timedelta(seconds=1), "1 second ago"),
    ],
)
def test_ago_says_it_as_the_seed_does(age: timedelta, text: str) -> None:
    assert output.ago(NOW - age, NOW) == text


def test_ago_of_a_time_slightly_in_the_future_is_now_not_a_prediction() -> None:
    assert output.ago(NOW + timedelta(seconds=3), NOW) == "now"


def test_ago_of_no_time_is_empty() -> None:
    assert output.ago(None, NOW) == ""


def test_rfc3339_is_utc_with_whole_seconds() -> None:
    assert output.rfc3339(datetime(2019, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == (
        "2019-01-01T00:00:00Z"
    )
    plus_two = timezone(timedelta(hours=2))
    assert output.rfc3339(datetime(2019, 1, 1, 2, 0, 0, tzinfo=plus_two)) == "2019-01-01T00:00:00Z"
    assert output.rfc3339(None) == ""


def test_event_line_is_time_source_message() -> None:
    when = datetime(2019, 1, 1, 0, 0, 51, tzinfo=UTC)
    assert output.event_line(
        when, "system/k8s/web", "Scaled up replica set web-745f845dc to 1"
    ) == ("2019-01-01T00:00:51Z system/k8s/web Scaled up replica set web-745f845dc to 1")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45, "45s"), (82, "1m22s"), (7205, "2h0m5s"), (-3, "0s")]
)
def test_elapsed_is_written_like_go_durations(seconds: int, text: str) -> None:
    assert output.elapsed(NOW, NOW + timedelta(seconds=seconds)) == text


def test_env_lines_are_sorted_and_masked_on_request() -> None:
    env = {"FOO": "bar", "A": "x=y"}
    assert output.env_lines(env) == ["A=x=y", "FOO=bar"]
    assert output.env_lines(env, mask=True) == ["A=****", "FOO=****"]


def test_render_writes_text_or_stable_json() -> None:
    result = output.Table(["NAME"], [["b"], ["a"]], [{"name": "b", "z": 1, "a": 2}])
    text, as_json = io.StringIO(), io.StringIO()
    output.render(result, output.TEXT, text)
    output.render(result, output.JSON, as_json)
    assert text.getvalue() == "NAME\nb\na\n"
    assert json.loads(as_json.getvalue()) == [{"name": "b", "z": 1, "a": 2}]
    assert as_json.getvalue().index('"a"') < as_json.getvalue().index('"z"')


def test_raw_text_gets_exactly_one_final_newline() -> None:
    for body in ("services:\n  web: {}\n", "services:\n  web: {}"):
        out = io.StringIO()
        output.render(output.Raw(body), stream=out)
        assert out.getvalue() == "services:\n  web: {}\n"


def test_progress_writes_start_and_ok_on_one_line() -> None:
    out = io.StringIO()
    progress = output.Progress(out)
    progress.start("Promoting RCDEFGHIJK")
    progress.ok()
    progress.start("Rolling back to RBCDEFGHIJ")
    progress.ok("RDEFGHIJKL")
    assert out.getvalue() == (
        "Promoting RCDEFGHIJK... OK\nRolling back to RBCDEFGHIJ... OK, RDEFGHIJKL\n"
    )


# --- input parsing ---------------------------------------------------------------------------


def test_env_pairs_keep_equals_signs_in_values_and_arguments_win_over_stdin() -> None:
    pairs = parse_pairs(["A=1", "URL=postgres://u:p@h/db?x=y"], ["B=2\n", "\n", "# c\n", "A=0\n"])
    assert pairs == {"B": "2", "A": "1", "URL": "postgres://u:p@h/db?x=y"}
    assert list(pairs) == ["B", "A", "URL"]


@pytest.mark.parametrize("bad", ["FOO", "=bar", ""])
def test_env_pair_without_a_key_and_equals_is_refused(bad: str) -> None:
    with pytest.raises(CliError, match="expected KEY=VALUE"):
        parse_pairs([bad])


def test_env_value_may_be_empty() -> None:
    assert parse_pairs(["EMPTY="]) == {"EMPTY": ""}


def test_images_are_service_equals_reference() -> None:
    assert parse_images(("web=registry/web:1.4", "worker=r/w@sha256:ab=")) == {
        "web": "registry/web:1.4",
        "worker": "r/w@sha256:ab=",
    }
    with pytest.raises(CliError, match="expected SERVICE=IMAGE_REFERENCE"):
        parse_images(("web",))
    with pytest.raises(CliError, match="given twice"):
        parse_images(("web=a", "web=b"))


@pytest.mark.parametrize(
    ("build_from", "active_build", "env_from", "active_env", "message"),
    [
        (None, False, "RY", False, BUILD_SOURCE_ERROR),
        ("RX", True, "RY", False, BUILD_SOURCE_ERROR),
        ("RX", False, None, False, ENV_SOURCE_ERROR),
        ("RX", False, "RY", True, ENV_SOURCE_ERROR),
    ],
)
def test_create_from_needs_exactly_one_source_of_each(
    build_from: str | None, active_build: bool, env_from: str | None, active_env: bool, message: str
) -> None:
    with pytest.raises(CliError) as err:
        check_sources(build_from, active_build, env_from, active_env)
    assert str(err.value) == message


def test_create_from_accepts_every_valid_combination() -> None:
    check_sources("RX", False, "RY", False)
    check_sources(None, True, "RY", False)
    check_sources("RX", False, None, True)
    check_sources(None, True, None, True)


@pytest.mark.parametrize(
    "args",
    [
        ["releases", "--limit", "99999999999"],  # does not fit the request's int32
        ["releases", "list", "--limit", "99999999999"],
        ["builds", "--limit", "2147483648"],
        ["deployments", "list", "--limit", "1001"],  # more than the server's largest page
    ],
)
def test_a_limit_beyond_the_largest_page_is_an_error_not_a_traceback(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "-a", "myapp"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"ERROR: invalid --limit {args[-1]}: use 1 to 1000\n")


@pytest.mark.parametrize(
    "extra", [["--image", "web=r/web:1"], ["--manifest", "m.yml"], ["--git-sha", "0a1b"]]
)
def test_builds_import_takes_an_exported_file_or_a_build_made_elsewhere_not_both(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["builds", "import", "-f", "b.tgz", *extra, "-a", "myapp"]) == 1
    assert capsys.readouterr() == ("", f"ERROR: {IMPORT_SOURCE_ERROR}\n")


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_a_timeout_that_does_not_fit_the_request_is_an_error_not_a_traceback(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["releases", command, "RBCDEFGHIJK", "--timeout", "99999999999", "-a", "myapp"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "ERROR: invalid --timeout 99999999999: use 1 to 2147483647\n")


# --- racks -----------------------------------------------------------------------------------


def test_without_a_rack_the_environment_or_defaults_name_the_services(tmp_path: Path) -> None:
    no_token = {"RELMAN_DATA_DIR": str(tmp_path)}
    assert config.resolve(None, no_token) == config.Endpoints("127.0.0.1:50051", "127.0.0.1:50052")
    env = {**no_token, "RELMAN_RELEASE_ADDR": "a:1", "RELMAN_DEPLOYER_ADDR": "b:2"}
    assert config.resolve(None, env) == config.Endpoints("a:1", "b:2")


def test_a_rack_comes_from_the_xdg_config_file(tmp_path: Path) -> None:
    path = tmp_path / "xdg" / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    path.write_text("racks:\n  prod:\n    release: r.prod:50051\n    deployer: d.prod:50052\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "RELMAN_RELEASE_ADDR": "ignored:1"}
    assert config.resolve("prod", env) == config.Endpoints("r.prod:50051", "d.prod:50052", "prod")


def test_a_token_comes_from_the_environment_then_the_rack_then_the_local_admin_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "racks:\n  a: {release: r:1, deployer: d:2, token: rmt_rack}\n"
        "  b: {release: r:3, deployer: d:4}\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "admin.token").write_text("rmt_local\n")
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RELMAN_DATA_DIR": str(data)}
    with_env = {**env, "RELMAN_TOKEN": "rmt_env"}
    assert config.resolve("a", with_env).token == "rmt_env"
    assert config.resolve("a", env).token == "rmt_rack"
    assert config.resolve(None, with_env).token == "rmt_env"
    assert config.resolve(None, env).token == "rmt_local"  # next to `make run`: no setup
    assert config.resolve("b", env).token == ""  # the local admin token never leaves the host
    assert config.resolve(None, {"RELMAN_DATA_DIR": str(tmp_path / "none")}).token == ""
    assert "rmt_" not in repr(config.resolve("a", env))


def test_the_local_admin_token_defaults_to_the_relman_dir_of_the_working_directory() -> None:
    assert config.local_admin_token_file({}) == Path(".relman/admin.token")


def test_tls_comes_from_the_rack_else_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "racks:\n  a: {release: r:1, deployer: d:2, tls_ca: /rack/ca.pem,"
        " tls_client_cert: /rack/c.pem, tls_client_key: /rack/c.key}\n"
        "  b: {release: r:3, deployer: d:4}\n"
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RELMAN_TLS_CA": "/env/ca.pem"}
    a = config.resolve("a", env)
    assert (a.tls_ca, a.tls_cert, a.tls_key, a.tls) == (
        "/rack/ca.pem",
        "/rack/c.pem",
        "/rack/c.key",
        True,
    )
    assert config.resolve("b", env).tls_ca == "/env/ca.pem"
    assert config.resolve(None, env).tls_ca == "/env/ca.pem"
    assert not config.resolve(None, {"RELMAN_DATA_DIR": str(tmp_path)}).tls


def test_tls_files_that_cannot_be_read_are_a_clear_error(tmp_path: Path) -> None:
    from relman_cli.client import channel_credentials

    with pytest.raises(CliError, match=r"cannot read TLS file .*missing\.pem"):
        channel_credentials(str(tmp_path / "missing.pem"), "", "")
    with pytest.raises(CliError, match="needs its key"):
        channel_credentials("", str(tmp_path / "c.pem"), "")


def test_calls_carry_the_actor_and_a_bearer_token_only_when_there_is_one() -> None:
    with_token = ServiceClient("Release service", "127.0.0.1:1", lambda _c: None, "rmt_x")
    without = ServiceClient("Release service", "127.0.0.1:1", lambda _c: None)
    assert ("authorization", "Bearer rmt_x") in with_token.metadata()
    assert [key for key, _ in without.metadata()] == ["x-relman-actor"]


def test_home_config_is_used_without_xdg(tmp_path: Path) -> None:
    assert config.racks_file({"HOME": str(tmp_path)}) == tmp_path / ".config/relman/racks.yml"


def test_an_unknown_rack_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "racks:\n  prod: {release: r:1, deployer: d:2}\n  dev: {release: r:3, deployer: d:4}\n"
    )
    with pytest.raises(CliError) as err:
        config.resolve("staging", {"XDG_CONFIG_HOME": str(tmp_path)})
    assert str(err.value) == f"rack not found: staging (racks in {path}: dev, prod)"


def test_a_rack_may_list_several_addresses_of_each_service(tmp_path: Path) -> None:
    path = tmp_path / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RELMAN_RETRY_SECONDS": "5"}
    path.write_text(
        "racks:\n  prod:\n    release: [r1:50051, r2:50051]\n"
        "    deployer:\n      - d1:50052\n      - d2:50052\n"
    )
    found = config.resolve("prod", env)
    assert (found.release, found.deployer) == ("r1:50051,r2:50051", "d1:50052,d2:50052")
    assert found.retry_seconds == 5.0
    path.write_text("racks:\n  bad: {release: r:1, deployer: [d1:1, 'd2:1,d3:1']}\n")
    with pytest.raises(CliError, match="rack bad: 'deployer' must be an address host:port or"):
        config.resolve("bad", env)
    path.write_text("racks:\n  empty: {release: r:1, deployer: []}\n")
    with pytest.raises(CliError, match="rack empty must have 'release' and 'deployer'"):
        config.resolve("empty", env)


@pytest.mark.parametrize("value", ["-1", "x", "nan", "inf", "100000"])
def test_a_bad_retry_setting_is_an_error(tmp_path: Path, value: str) -> None:
    env = {"RELMAN_DATA_DIR": str(tmp_path), "RELMAN_RETRY_SECONDS": value}
    with pytest.raises(CliError, match="RELMAN_RETRY_SECONDS"):
        config.resolve(None, env)


def test_a_rack_missing_an_endpoint_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "relman" / "racks.yml"
    path.parent.mkdir(parents=True)
    path.write_text("racks:\n  prod: {release: r:1}\n")
    with pytest.raises(CliError, match="rack prod must have 'release' and 'deployer'"):
        config.resolve("prod", {"XDG_CONFIG_HOME": str(tmp_path)})


# --- git descriptions ------------------------------------------------------------------------


def test_clean_git_tree_describes_the_build_by_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "my commit message")
    sha = git(tmp_path, "rev-parse", "HEAD")
    assert build_description(tmp_path) == (f"build {sha[:10]} my commit message", sha)

    (tmp_path / "f").write_text("2")  # dirty: no commit holds this tree
    assert build_description(tmp_path) == ("build", "")
    assert build_description(tmp_path, "0a1b2c3d4e5f6") == ("build 0a1b2c3d4e", "0a1b2c3d4e5f6")


def test_outside_git_the_description_is_plain(tmp_path: Path) -> None:
    assert build_description(tmp_path) == ("build", "")


# --- byte meters -----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_meter_on_a_terminal_continues_the_steps_line_in_place_and_restores_it() -> None:
    from relman_cli.meter import Meter

    screen, now = _Terminal(), [0.0]
    meter = Meter(
        "Uploading source",
        total=4_000_000,
        stream=screen,
        pending="Uploading source... ",
        clock=lambda: now[0],
    )
    now[0] = 0.2
    meter.update(1_000)
    assert screen.getvalue() == ""  # quick work shows nothing
    now[0] = 1.0
    meter.update(2_000_000)
    now[0] = 1.05
    meter.update(2_100_000)  # redrawn at most every 0.1 s
    now[0] = 2.0
    meter.update(4_000_000)
    meter.close()
    assert screen.getvalue().split("\r")[1:] == [
        "Uploading source... 2.0 MB of 4.0 MB (2.0 MB/s)\x1b[K",
        "Uploading source... 4.0 MB of 4.0 MB (2.0 MB/s)\x1b[K",
        "Uploading source... \x1b[K",
    ]


def test_a_meter_elsewhere_writes_a_plain_line_now_and_then_and_nothing_when_quiet() -> None:
    from relman_cli.meter import Meter

    log, now = io.StringIO(), [0.0]
    meter = Meter("Packaging source", stream=log, clock=lambda: now[0])
    quiet = Meter("Packaging source", stream=log, quiet=True, clock=lambda: now[0])
    for second in range(1, 12):
        now[0] = float(second)
        meter.update(second * 1_000_000)
        quiet.update(second * 1_000_000)
    meter.close()
    assert log.getvalue().splitlines() == [
        "Packaging source: 5.0 MB (1.0 MB/s)",
        "Packaging source: 10.0 MB (1.0 MB/s)",
    ]
