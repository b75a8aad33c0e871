"""The compose stack (docker-compose.yml), built from services/Dockerfile and run for real.

A private dockerd (``docker_daemon``) gets local stand-ins for the public base images
(tests/support/local_images.py: Debian-built ``python``, ``postgres`` and ``registry``,
cached under ~/.cache/relman/compose), the two service images are built from the repository
(BuildKit, the host's CA bundle as the optional ``cacert`` build secret), and docker-compose
1.29 starts PostgreSQL, the registry, the Release service and two Deployers under a project
name of this run, ports published on 127.0.0.1. The host's ``relman`` command then runs the
README's walkthrough against the published ports with the admin token the Release service
wrote to its volume; a promotion's owning Deployer is killed mid-rollout and the other one
finishes it while the CLI's stream moves over; after ``down`` (volumes kept) and ``up`` every
release is still there; ``down -v`` removes the volumes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.cli_run import RELMAN, Done, cli_env, run
from support.containers import DockerDaemon, skip_or_fail
from support.helpers import free_port, wait_for
from support.local_images import (
    POSTGRES,
    PYTHON,
    REGISTRY,
    build_service_images,
    ensure_images,
    tools_missing,
)

pytestmark = [pytest.mark.xdist_group("containers"), pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
IMAGE_PREFIX = "relman"
IMAGE_TAG = "compose-test"
POD_DELAY = "5"  # seconds a simulated pod takes to become ready: a promote lasts that long
LEASE_TTL = "3"  # how long a killed Deployer's deployment waits for the other one
SERVICES = ("postgres", "registry", "release", "deployer-a", "deployer-b")
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


def _log(message: str) -> None:
    print(f"[compose] {message}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    daemon: DockerDaemon
    project: str
    env: dict[str, str]
    ports: dict[str, int]
    cwd: Path
    cli: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "-p", self.project, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done.stdout

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).strip()
        assert cid, f"no container for {service}"
        return cid

    def health(self, cid: str) -> str:
        status = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
        done = self.daemon.docker("inspect", "-f", status, cid, check=False)
        return done.stdout.strip()

    def wait_healthy(self, timeout: float = 180) -> dict[str, str]:
        """Every service's container running and healthy; {service: container id}."""
        ids = {service: self.container(service) for service in SERVICES}

        def all_healthy() -> bool:
            states = {s: self.health(cid) for s, cid in ids.items()}
            bad = [f"{s}: {st}" for s, st in states.items() if st != "running healthy"]
            if any("exited" in b for b in bad):
                raise AssertionError(f"a container exited: {bad}\n{self.logs()}")
            return not bad

        wait_for(all_healthy, timeout=timeout, interval=0.5, what="every service healthy")
        return ids

    def logs(self, tail: int = 40) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", str(tail), timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as err:
            return f"(no logs: {err})"

    def login(self) -> None:
        """The CLI's environment: the published ports and the admin token that the Release
        service wrote to its volume on its first start (what ``make run``'s CLI reads from
        ``.relman/admin.token``)."""
        token = self.daemon.docker("exec", self.container("release"), "cat", "/data/admin.token")
        self.cli = cli_env(
            {
                "RELMAN_RELEASE_ADDR": f"127.0.0.1:{self.ports['release']}",
                "RELMAN_DEPLOYER_ADDR": (
                    f"127.0.0.1:{self.ports['deployer-a']},127.0.0.1:{self.ports['deployer-b']}"
                ),
                "RELMAN_TOKEN": token.stdout.strip(),
            },
            self.cwd,
        )

    def relman(self, *args: str) -> Done:
        return run(list(args), self.cli, cwd=self.cwd, timeout=120)

    def ok(self, *args: str) -> list[str]:
        done = self.relman(*args)
        assert done.code == 0, f"relman {' '.join(args)}: {done.code}\n{done.out}\n{done.err}"
        return done.lines


@pytest.fixture
def stack(docker_daemon: DockerDaemon, tmp_path: Path) -> Iterator[Stack]:
    missing = tools_missing()
    if missing:
        skip_or_fail(
            f"missing Debian packages: {' '.join(missing)} — `.ci/run` installs them: "
            f"apt-get install -y --no-install-recommends {' '.join(missing)}"
        )
    t0 = time.monotonic()
    how = ensure_images([docker_daemon.cli], docker_daemon.env, log=_log)
    t1 = time.monotonic()
    _log(f"stand-in images {how} in {t1 - t0:.1f}s")
    # docker-compose 1.29 cannot pass a build secret: the images are built with the docker CLI
    # under the names docker-compose.yml gives them, and compose runs them (`up --no-build`).
    build_service_images(
        [docker_daemon.cli], docker_daemon.env, REPO, IMAGE_PREFIX, IMAGE_TAG, log=_log
    )
    t2 = time.monotonic()
    _log(f"service images built in {t2 - t1:.1f}s")
    ports = {name: free_port() for name in ("release", "deployer-a", "deployer-b", "registry")}
    env = {
        **docker_daemon.env,
        "RELMAN_PYTHON_IMAGE": PYTHON,
        "RELMAN_POSTGRES_IMAGE": POSTGRES,
        "RELMAN_REGISTRY_IMAGE": REGISTRY,
        "RELMAN_IMAGE_PREFIX": IMAGE_PREFIX,
        "RELMAN_IMAGE_TAG": IMAGE_TAG,
        "RELMAN_RELEASE_PORT": str(ports["release"]),
        "RELMAN_DEPLOYER_PORT": str(ports["deployer-a"]),
        "RELMAN_DEPLOYER_B_PORT": str(ports["deployer-b"]),
        "RELMAN_REGISTRY_PORT": str(ports["registry"]),
        "RELMAN_SIM_POD_DELAY": POD_DELAY,
        "RELMAN_LEASE_TTL": LEASE_TTL,
    }
    (tmp_path / "convox.yml").write_text(MANIFEST)
    stack = Stack(docker_daemon, f"relmantest{secrets.token_hex(4)}", env, ports, tmp_path)
    try:
        stack.compose("up", "-d", "--no-build")
        stack.wait_healthy()
        _log(f"stack up and healthy in {time.monotonic() - t2:.1f}s")
        stack.login()
        yield stack
    except BaseException:
        _log(stack.logs())
        raise
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "5")
        left = docker_daemon.docker(
            "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={stack.project}"
        ).stdout.split()
        assert left == [], f"volumes left after down -v: {left}"


def _started_on(stack: Stack, ids: dict[str, str], release: str) -> str | None:
    """The Deployer service whose log says it started the promote of ``release``."""
    for service in ("deployer-a", "deployer-b"):
        logs = stack.daemon.docker("logs", ids[service], check=False)
        if f"app myapp: started promote of {release} " in logs.stdout + logs.stderr:
            return service
    return None


def _releases(stack: Stack) -> list[dict[str, object]]:
    """Every release of myapp as ``releases -o json`` shows it."""
    rows = json.loads("\n".join(stack.ok("releases", "-a", "myapp", "-o", "json")))
    assert isinstance(rows, list)
    return rows


def test_compose_stack_walkthrough_failover_and_restart(stack: Stack) -> None:
    t0 = time.monotonic()
    # The images run as the non-root uid and hold what runs, not the test and lint tools.
    release = stack.container("release")
    assert stack.daemon.docker("exec", release, "id", "-u").stdout.strip() == "10001"
    probe = (
        "import importlib.util as u; "
        "names = ('pytest', 'mypy', 'relman_cluster', 'relman_deployer'); "
        "print([m for m in names if u.find_spec(m)])"
    )
    assert stack.daemon.docker("exec", release, "python", "-c", probe).stdout.strip() == (
        "['relman_deployer']"
    )
    # The README's walkthrough through the published ports.
    assert stack.ok("apps", "create", "myapp") == ["Creating myapp... OK"]
    lines = stack.ok("builds", "import", "--image", "web=registry/web:1", "-a", "myapp")
    first = lines[-1].removeprefix("Release: ")
    lines = stack.ok("env", "set", "ROUND=1", "-a", "myapp")
    assert lines[0] == "Setting ROUND... OK"
    second = lines[1].removeprefix("Release: ")
    lines = stack.ok("releases", "promote", second, "-a", "myapp")
    assert lines[0] == f"Promoting {second}..." and lines[-1] == "OK", lines
    lines = stack.ok("releases", "-a", "myapp")
    assert lines[1].split()[:2] == [second, "active"], lines
    assert lines[2].split()[0] == first

    # A slow promote; its Deployer is killed; the other Deployer finishes it and the CLI's
    # stream follows it there.
    ids = stack.wait_healthy()
    third = stack.ok("env", "set", "ROUND=2", "-a", "myapp")[1].removeprefix("Release: ")
    out = stack.cwd / "promote.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [str(RELMAN), "releases", "promote", third, "-a", "myapp"],
            stdout=sink,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=stack.cli,
            cwd=stack.cwd,
            text=True,
        )
        try:
            owner = wait_for(
                lambda: _started_on(stack, ids, third), timeout=60, interval=0.1, what="owner"
            )
            assert "Status: Updating => Running" not in out.read_text()
            stack.daemon.docker("kill", ids[owner])
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    lines = out.read_text().splitlines()
    assert (proc.returncode, err) == (0, ""), (lines, err)
    assert lines[0] == f"Promoting {third}..." and lines[-1] == "OK", lines
    other = "deployer-b" if owner == "deployer-a" else "deployer-a"
    deployment = stack.ok("deployments", "-a", "myapp")[1].split()
    assert deployment[1:3] == [third, "succeeded"], deployment
    other_logs = stack.daemon.docker("logs", ids[other]).stderr
    assert f"deployment {deployment[0]} app myapp: resuming" in other_logs
    # The log the CLI streamed is the deployment's log: every event once, across the move.
    assert stack.ok("deployments", "logs", deployment[0], "-a", "myapp") == lines[1:-1]
    assert stack.health(ids[owner]).startswith("exited")  # killed, not restarted
    _log(f"walkthrough and failover in {time.monotonic() - t0:.1f}s")

    # Everything is in the volumes: down (keeping them), up, and it is all still there.
    before = _releases(stack)
    assert [(r["id"], r["status"]) for r in before] == [
        (third, "active"),
        (second, ""),
        (first, ""),
    ], before
    t1 = time.monotonic()
    stack.compose("down", "--timeout", "5")
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    _log(f"down and up again in {time.monotonic() - t1:.1f}s")
    stack.login()  # the same token, read again from the volume
    assert _releases(stack) == before
    assert "ROUND=2" in stack.ok("env", "-a", "myapp")  # the secret key survived too
    lines = stack.ok("releases", "rollback", second, "-a", "myapp")  # and it still deploys
    assert lines[0].startswith(f"Rolling back to {second}... OK") and lines[-1] == "OK", lines
