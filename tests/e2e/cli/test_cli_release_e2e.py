"""The installed ``relman`` command against the real Release service process.

Walks the seed page (apps create, build import, env set, releases, info, manifest, every
create-from form) comparing whole output lines, on SQLite and on PostgreSQL; then the rest of
the release-side commands on SQLite. Ids and times are taken from the output by regex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from relman.v1 import release_pb2, release_pb2_grpc, types_pb2
from relman_common import tokens
from relman_common.auth import call_metadata
from support.cli_run import Done, cli_env, git, run, run_on_a_terminal
from support.helpers import ServiceProcess, free_port, read_token

BUILD_ID = r"B[A-Z]{10}"
RELEASE_ID = r"R[A-Z]{10}"
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
AGO = r"(?:now|\d+ seconds? ago|1 minute ago)"  # everything here is seconds old

MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


class Cli:
    """``relman`` with the environment of one test; ``ok`` asserts success and no stderr."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str, stdin: str | None = None) -> Done:
        return run(list(args), self.env, stdin=stdin, cwd=self.cwd)

    def ok(self, *args: str, stdin: str | None = None) -> Done:
        done = self(*args, stdin=stdin)
        assert (done.code, done.err) == (0, ""), (args, done)
        return done

    def fails(self, *args: str) -> str:
        done = self(*args)
        assert done.code == 1, (args, done)
        return done.err


def start_release_service(tmp: Path, database_url: str = "") -> tuple[ServiceProcess, str]:
    """The Release service as ``make run`` starts it: authentication on, state in
    ``tmp/data``, where it writes the admin token the CLI finds through RELMAN_DATA_DIR."""
    addr = f"127.0.0.1:{free_port()}"
    args = ["--addr", addr, "--data-dir", str(tmp / "data")]
    if database_url:
        args += ["--database-url", database_url]
    service = ServiceProcess(
        "relman_release", args, env={"RELMAN_AUTH": "on"}, log_path=tmp / "release.log"
    )
    return service.start(addr), addr


def user_env(addr: str, tmp: Path, data_dir: Path) -> dict[str, str]:
    """The CLI's environment: no token configured, the local admin token in RELMAN_DATA_DIR."""
    return cli_env({"RELMAN_RELEASE_ADDR": addr, "RELMAN_DATA_DIR": str(data_dir)}, tmp)


def git_repo(path: Path, subject: str) -> str:
    """A clean git tree holding the seed's manifest; returns HEAD's sha."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "convox.yml").write_text(MANIFEST)
    git(path, "init", "-q")
    git(path, "add", "convox.yml")
    git(path, "commit", "-q", "-m", subject)
    return git(path, "rev-parse", "HEAD")


def mark_active(addr: str, token: str, app: str, release_id: str) -> None:
    """What the Deployer does after a successful deployment: a real RPC of the contract."""
    started = Timestamp()
    started.GetCurrentTime()
    with grpc.insecure_channel(addr) as channel:
        reported = release_pb2_grpc.ReleaseServiceStub(channel).ReportDeployment(
            release_pb2.ReportDeploymentRequest(
                deployment_id="DTESTTESTTE",
                app=app,
                release_id=release_id,
                outcome=types_pb2.OUTCOME_SUCCEEDED,
                started=started,
            ),
            metadata=call_metadata(token),
            timeout=30,
        )
    assert reported.current
    assert reported.release.status == release_pb2.RELEASE_STATUS_ACTIVE


def expect_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """What a table must look like, written out independently of relman_cli.output."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        (
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        ).rstrip()
        for r in [headers, *rows]
    ]


def released(done: Done) -> str:
    match = re.fullmatch(rf"Release: ({RELEASE_ID})", done.lines[-1])
    assert match, done
    return match.group(1)


def created_column(lines: list[str], ids: list[str]) -> list[str]:
    """The CREATED cells of ``lines`` (rows in ``ids`` order), checked to be humanized."""
    found = []
    for line, release_id in zip(lines[1:], ids, strict=True):
        match = re.search(rf"  ({AGO})  ", line)
        assert line.startswith(release_id) and match, (line, release_id)
        found.append(match.group(1))
    return found


# --- the seed page, on both databases -------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def seed_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cli, str, Path]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    service, addr = start_release_service(tmp_path, url)
    repo = tmp_path / "repo"
    try:
        yield Cli(user_env(addr, tmp_path, tmp_path / "data"), repo), addr, repo
    finally:
        service.stop()


def test_seed_page_walkthrough(seed_cli: tuple[Cli, str, Path]) -> None:
    cli, addr, repo = seed_cli
    sha = git_repo(repo, "my commit message")

    # Creating a Release: On Build Creation
    assert cli.ok("apps", "create", "myapp").lines == ["Creating myapp... OK"]
    imported = cli.ok("builds", "import", "--image", "web=registry.host/web:1", "-a", "myapp")
    assert imported.lines[0] == "Importing build... OK"
    build_match = re.fullmatch(rf"Build: ({BUILD_ID})", imported.lines[1])
    assert build_match, imported.lines
    build = build_match.group(1)
    first = released(imported)
    assert len(imported.lines) == 3

    # On Environment Change
    env_set = cli.ok("env", "set", "FOO=bar", "-a", "myapp")
    assert env_set.lines[0] == "Setting FOO... OK"
    second = released(env_set)
    assert len(env_set.lines) == 2

    # Listing Releases
    listing = cli.ok("releases", "-a", "myapp").lines
    created = created_column(listing, [second, first])
    assert listing == expect_table(
        ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"],
        [
            [second, "", build, created[0], "env add:FOO"],
            [first, "", build, created[1], f"build {sha[:10]} my commit message"],
        ],
    )

    # Getting Information about a Release
    info = cli.ok("releases", "info", second, "-a", "myapp").lines
    assert info[0] == f"Id           {second}"
    assert info[1] == f"Build        {build}"
    assert re.fullmatch(rf"Created      {RFC3339}", info[2]), info
    assert info[3:] == ["Actor        admin", "Description  env add:FOO", "Env          FOO=bar"]

    # Getting the Manifest for a Release
    assert cli.ok("releases", "manifest", second, "-a", "myapp").out == MANIFEST

    # Creating a Custom Release: build from one release, env from another
    made = cli.ok(
        "releases", "create-from", f"--build-from={first}", f"--env-from={second}", "-a", "myapp"
    )
    assert made.lines[0] == "Creating release... OK"
    custom = released(made)
    assert len(made.lines) == 2
    shown = cli.ok("releases", "info", custom, "-a", "myapp").lines
    assert shown[1] == f"Build        {build}"
    assert shown[3:] == ["Actor        admin", "Description  created-from", "Env          FOO=bar"]

    # Neither or both sources: the seed's errors, and nothing is created
    assert cli.fails("releases", "create-from", f"--env-from={second}", "-a", "myapp") == (
        "ERROR: must specify either --build-from or --use-active-release-build\n"
    )
    assert cli.fails("releases", "create-from", f"--build-from={first}", "-a", "myapp") == (
        "ERROR: must specify either --env-from or --use-active-release-env\n"
    )
    assert len(cli.ok("releases", "-a", "myapp").lines) == 1 + 3

    # Using Active Release Components (the first release is made active through the RPC
    # the Deployer calls after a successful deployment)
    mark_active(addr, deployer_token(cli), "myapp", first)
    active_build = released(
        cli.ok(
            "releases",
            "create-from",
            "--use-active-release-build",
            f"--env-from={second}",
            "-a",
            "myapp",
        )
    )
    active_env = released(
        cli.ok(
            "releases",
            "create-from",
            f"--build-from={second}",
            "--use-active-release-env",
            "-a",
            "myapp",
        )
    )
    both_active = released(
        cli.ok(
            "releases",
            "create-from",
            "--use-active-release-build",
            "--use-active-release-env",
            "-a",
            "myapp",
        )
    )
    assert cli.ok("env", "--release", active_build, "-a", "myapp").lines == ["FOO=bar"]
    assert cli.ok("env", "--release", active_env, "-a", "myapp").lines == []
    assert cli.ok("env", "--release", both_active, "-a", "myapp").lines == []

    ids = [both_active, active_env, active_build, custom, second, first]
    listing = cli.ok("releases", "-a", "myapp").lines
    created = created_column(listing, ids)
    descriptions = ["created-from"] * 4 + ["env add:FOO", f"build {sha[:10]} my commit message"]
    statuses = ["", "", "", "", "", "active"]
    assert listing == expect_table(
        ["ID", "STATUS", "BUILD", "CREATED", "DESCRIPTION"],
        [
            [i, s, build, c, d]
            for i, s, c, d in zip(ids, statuses, created, descriptions, strict=True)
        ],
    )

    # Every read command speaks JSON
    as_json = json.loads(cli.ok("releases", "-a", "myapp", "-o", "json").out)
    assert [r["id"] for r in as_json] == ids
    assert as_json[-1]["status"] == "active"
    assert json.loads(cli.ok("releases", "info", second, "-a", "myapp", "--output", "json").out)[
        "env"
    ] == {"FOO": "bar"}


# --- the rest, on one SQLite service --------------------------------------------------------


@pytest.fixture(scope="module")
def service_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("release")
    process, addr = start_release_service(tmp)
    try:
        yield addr, tmp / "data"
    finally:
        process.stop()


@pytest.fixture
def service(service_data: tuple[str, Path]) -> str:
    return service_data[0]


@pytest.fixture
def cli(service_data: tuple[str, Path], tmp_path: Path) -> Cli:
    (tmp_path / "convox.yml").write_text(MANIFEST)  # tmp_path is not a git tree
    addr, data_dir = service_data
    return Cli(user_env(addr, tmp_path, data_dir), tmp_path)


def admin_token(cli: Cli) -> str:
    return read_token(Path(cli.env["RELMAN_DATA_DIR"]))


def deployer_token(cli: Cli) -> str:
    """The Deployer's service token: only a Deployer may report a deployment."""
    return read_token(Path(cli.env["RELMAN_DATA_DIR"]), tokens.DEPLOYER_TOKEN_FILE)


_apps = iter(range(1_000_000))


@pytest.fixture
def app(cli: Cli) -> str:
    name = f"app{next(_apps)}-{free_port()}"
    cli.ok("apps", "create", name)
    return name


def test_env_set_reads_extra_pairs_from_stdin_and_lists_them_sorted(cli: Cli, app: str) -> None:
    done = cli.ok("env", "set", "Z=last", "-a", app, stdin="URL=pg://h/db?a=b\n\n# note\nA=1\n")
    assert done.lines[0] == "Setting URL, A, Z... OK"
    release = released(done)
    assert cli.ok("env", "-a", app).lines == ["A=1", "URL=pg://h/db?a=b", "Z=last"]
    assert cli.ok("env", "list", "-a", app).lines == ["A=1", "URL=pg://h/db?a=b", "Z=last"]
    assert cli.ok("env", "get", "URL", "-a", app).out == "pg://h/db?a=b\n"
    assert json.loads(cli.ok("env", "-a", app, "-o", "json").out) == {
        "env": {"A": "1", "URL": "pg://h/db?a=b", "Z": "last"},
        "release_id": release,
    }
    assert cli.fails("env", "get", "NOPE", "-a", app) == "ERROR: env not found: NOPE\n"


def test_several_keys_are_set_in_one_release_described_by_the_server(cli: Cli, app: str) -> None:
    done = cli.ok("env", "set", "A=1", "B=2", "-a", app)
    assert done.lines[0] == "Setting A, B... OK"
    release = released(done)
    info = cli.ok("releases", "info", release, "-a", app).lines
    assert info[3:] == [
        "Actor        admin",
        "Description  env add:A add:B",
        "Env          A=1",
        "             B=2",
    ]


def test_a_change_that_changes_nothing_creates_no_release(cli: Cli, app: str) -> None:
    cli.ok("env", "set", "A=1", "-a", app)
    again = cli.ok("env", "set", "A=1", "-a", app)
    assert again.lines == ["Setting A... OK", "Nothing changed; no release was created"]
    assert len(cli.ok("releases", "-a", app).lines) == 2


def test_unset_and_replace_make_releases(cli: Cli, app: str) -> None:
    cli.ok("env", "set", "A=1", "B=2", "-a", app)
    unset = cli.ok("env", "unset", "A", "-a", app)
    assert unset.lines[0] == "Unsetting A... OK"
    released(unset)
    assert cli.ok("env", "-a", app).lines == ["B=2"]
    replaced = cli.ok("env", "set", "--replace", "C=3", "-a", app)
    assert replaced.lines[0] == "Setting C... OK"
    assert cli.ok("env", "-a", app).lines == ["C=3"]
    assert cli.fails("env", "unset", "NOPE", "-a", app).startswith("ERROR: ")


def test_id_flag_prints_only_the_new_id_on_stdout(cli: Cli, app: str) -> None:
    done = cli("env", "set", "A=1", "--id", "-a", app)
    assert done.code == 0
    assert re.fullmatch(rf"{RELEASE_ID}\n", done.out), done
    assert done.err == f"Setting A... OK\nRelease: {done.out.strip()}\n"
    imported = cli("builds", "import", "--image", "web=r/web:1", "--id", "-a", app)
    assert re.fullmatch(rf"{RELEASE_ID}\n", imported.out), imported
    assert imported.err.endswith(f"Release: {imported.out.strip()}\n")


def test_env_change_on_top_of_an_unpromoted_build_warns(cli: Cli, app: str, service: str) -> None:
    first = released(cli.ok("builds", "import", "--image", "web=r/web:1", "-a", app))
    mark_active(service, deployer_token(cli), app, first)
    cli.ok("builds", "import", "--image", "web=r/web:2", "-a", app)
    done = cli("env", "set", "A=1", "-a", app)
    assert done.code == 0
    assert done.lines[0] == "Setting A... OK"
    released(done)
    assert re.fullmatch(r"WARNING: \S.*\n", done.err), done.err


def test_builds_list_and_info(cli: Cli, app: str) -> None:
    imported = cli.ok(
        "builds",
        "import",
        "--image",
        "web=r/web:1",
        "--description",
        "hand made",
        "--git-sha",
        "0a1b2c3d4e5f",
        "-a",
        app,
    )
    build = imported.lines[1].removeprefix("Build: ")
    listing = cli.ok("builds", "-a", app).lines
    headers = ["ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"]
    assert listing[0].split() == headers
    # RELEASE: an imported build does not name its release yet (the Release service leaves
    # Build.release_id empty on import); a built one does (test_cli_build_e2e).
    assert re.fullmatch(rf"{build}  \w+ +(R[A-Z]{{10}})? +{AGO} +\d+s +hand made", listing[1])
    info = cli.ok("builds", "info", build, "-a", app).lines
    assert info[0] == f"Id           {build}"
    assert "Description  hand made" in info
    assert "Git Sha      0a1b2c3d4e5f" in info
    assert "Images       web=r/web:1" in info
    assert json.loads(cli.ok("builds", "info", build, "-a", app, "-o", "json").out)["images"] == {
        "web": "r/web:1"
    }


def test_diff_shows_build_and_env_changes(cli: Cli, app: str) -> None:
    first = released(cli.ok("env", "set", "A=1", "B=2", "C=3", "-a", app))
    cli.ok("env", "set", "B=20", "D=4", "-a", app)
    last = released(cli.ok("env", "unset", "C", "-a", app))
    diff = cli.ok("releases", "diff", first, last, "-a", app).lines
    assert diff == ["Build: (none) (unchanged)", "+ D=4", "~ B=2 => 20", "- C=3"]
    data = json.loads(cli.ok("releases", "diff", first, last, "-a", app, "-o", "json").out)
    assert [c["key"] for c in data["added"]] == ["D"]


def test_apps_list_info_delete(cli: Cli, app: str, service: str) -> None:
    release = released(cli.ok("env", "set", "A=1", "-a", app))
    row = [line for line in cli.ok("apps").lines if line.startswith(app + " ")]
    assert row and row[0].split() == [app, "created"]
    mark_active(service, deployer_token(cli), app, release)
    row = [line for line in cli.ok("apps", "list").lines if line.startswith(app + " ")]
    assert row[0].split() == [app, "running", release]
    info = cli.ok("apps", "info", app).lines
    assert info[:5] == [
        f"Name     {app}",
        "Status   running",
        "Locked   false",  # where Convox shows it
        f"Release  {release}",
        f"Latest   {release}",
    ]
    apps = json.loads(cli.ok("apps", "-o", "json").out)
    assert any(a["name"] == app and a["actor"] == "admin" for a in apps)  # the token's name
    assert cli.ok("apps", "delete", app).lines == [f"Deleting {app}... OK"]
    assert cli.fails("apps", "info", app) == f"ERROR: app not found: {app}\n"


def test_server_errors_are_one_line_without_traceback(cli: Cli, app: str) -> None:
    assert cli.fails("releases", "-a", "nosuchapp") == "ERROR: app not found: nosuchapp\n"
    assert cli.fails("apps", "create", app) == f"ERROR: app already exists: {app}\n"
    assert cli.fails("releases", "info", "RAAAAAAAAAA", "-a", app) == (
        "ERROR: release not found: RAAAAAAAAAA\n"
    )
    assert cli.fails("env", "set", "NOEQUALS", "-a", app) == (
        "ERROR: invalid argument 'NOEQUALS': expected KEY=VALUE\n"
    )


def test_app_comes_from_relman_app_and_is_required(cli: Cli, app: str) -> None:
    cli.ok("env", "set", "A=1", "-a", app)
    with_env = Cli({**cli.env, "RELMAN_APP": app}, cli.cwd)
    assert with_env.ok("env").lines == ["A=1"]
    assert with_env.ok("releases", "-a", app, "list").lines[0].startswith("ID ")
    assert cli.fails("env") == "ERROR: no app given: use -a/--app NAME or set RELMAN_APP\n"


def test_a_rack_names_the_service_and_its_token(
    cli: Cli, app: str, service: str, tmp_path: Path
) -> None:
    racks = tmp_path / ".config" / "relman" / "racks.yml"
    racks.parent.mkdir(parents=True)
    token = admin_token(cli)
    racks.write_text(
        f"racks:\n  local:\n    release: {service}\n    deployer: 127.0.0.1:1\n"
        f"    token: {token}\n"
        f"  tokenless:\n    release: {service}\n    deployer: 127.0.0.1:1\n"
    )
    elsewhere = Cli(
        {**cli.env, "RELMAN_RELEASE_ADDR": "127.0.0.1:1", "RELMAN_DATA_DIR": str(tmp_path)},
        cli.cwd,
    )
    assert elsewhere.ok("apps", "info", app, "-r", "local").lines[0] == f"Name     {app}"
    assert Cli({**elsewhere.env, "RELMAN_RACK": "local"}, cli.cwd).ok("apps", "info", app)
    # The local admin token is never sent to a named rack; RELMAN_TOKEN is.
    local_admin = Cli({**cli.env, "RELMAN_RACK": "tokenless"}, cli.cwd)
    assert local_admin.fails("apps", "info", app) == (
        "ERROR: missing or invalid token (set RELMAN_TOKEN or use the local admin token)\n"
    )
    assert Cli({**local_admin.env, "RELMAN_TOKEN": token}, cli.cwd).ok("apps", "info", app)


def test_unreachable_release_service_is_named(cli: Cli) -> None:
    addr = f"127.0.0.1:{free_port()}"
    down = Cli({**cli.env, "RELMAN_RELEASE_ADDR": addr}, cli.cwd)
    assert down.fails("apps") == (
        f"ERROR: cannot reach the Release service at {addr} (is it running? try: make run)\n"
    )


def _run_on_a_terminal(cli: Cli, *args: str) -> str:
    return run_on_a_terminal(list(args), cli.env, cli.cwd)


def test_env_values_are_masked_on_a_terminal_unless_revealed(cli: Cli, app: str) -> None:
    release = released(cli.ok("env", "set", "SECRET=hunter2", "-a", app))
    on_terminal = _run_on_a_terminal(cli, "releases", "info", release, "-a", app)
    assert on_terminal.splitlines()[-1] == "Env          SECRET=****"
    assert "hunter2" not in on_terminal
    revealed = _run_on_a_terminal(cli, "releases", "info", release, "--reveal", "-a", app)
    assert revealed.splitlines()[-1] == "Env          SECRET=hunter2"
    piped = cli.ok("releases", "info", release, "-a", app)
    assert piped.lines[-1] == "Env          SECRET=hunter2"
