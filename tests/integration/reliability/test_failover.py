"""Failover with real processes on PostgreSQL: two Release services and two Deployers on one
database, the CLI given both addresses of each (issue 14).

``kill -9`` of the Deployer running a promote: the CLI's ``releases promote`` re-attaches to
the other Deployer with Watch(after_seq), prints every event exactly once and exits 0 when the
other Deployer (which takes the deployment over once its lease expires) finishes it.
``kill -9`` of one Release service during concurrent ``env set`` commands: every command
ends OK (retried on the other address with its request id), and there are exactly as many
releases as commands.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from relman.v1 import release_pb2, release_pb2_grpc
from relman_common import tokens
from support.cli_run import RELMAN, cli_env, run
from support.helpers import ServiceProcess, free_port, wait_for
from support.reliability import CLEAN_ENV, figure
from support.reliability import Services as OneOfEach

pytestmark = pytest.mark.xdist_group("reliability")

LEASE_TTL = 2.0
POD_DELAY = 0.3
REPLICAS = 4


class Rack:
    """Two Release services and two Deployers as processes on one PostgreSQL database."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp = tmp_path
        self.base = OneOfEach(tmp_path, database_url)  # the first Release service, and stubs
        self.env = {**CLEAN_ENV, "RELMAN_DATABASE_URL": database_url}
        self.release_addrs = [self.base.release_addr, f"127.0.0.1:{free_port()}"]
        self.deployer_addrs = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        self.releases: list[ServiceProcess] = []
        self.deployers: list[ServiceProcess] = []

    def start(self) -> None:
        self.base.start_release()
        self.releases.append(self.base.release_proc)
        self.releases.append(self._release(1).start(self.release_addrs[1]))
        for i, addr in enumerate(self.deployer_addrs):
            self.deployers.append(self._deployer(i).start(addr))

    def _release(self, i: int) -> ServiceProcess:
        args = ["--addr", self.release_addrs[i], "--data-dir", str(self.base.data_dir), "--auth"]
        return ServiceProcess(
            "relman_release", args, env=self.env, log_path=self.tmp / f"release{i}.log"
        )

    def _deployer(self, i: int) -> ServiceProcess:
        args = [
            "--addr",
            self.deployer_addrs[i],
            "--release-addr",
            ",".join(self.release_addrs),
            "--data-dir",
            str(self.base.data_dir),
            "--sim-pod-delay",
            str(POD_DELAY),
            "--lease-ttl",
            str(LEASE_TTL),
            "--auth",
        ]
        return ServiceProcess(
            "relman_deployer", args, env=self.env, log_path=self.tmp / f"deployer{i}.log"
        )

    def cli_env(self) -> dict[str, str]:
        admin = tokens.read_token_file(self.base.data_dir / tokens.ADMIN_TOKEN_FILE)
        return cli_env(
            {
                "RELMAN_RELEASE_ADDR": ",".join(self.release_addrs),
                "RELMAN_DEPLOYER_ADDR": ",".join(self.deployer_addrs),
                "RELMAN_TOKEN": admin,
                "RELMAN_RETRY_SECONDS": "30",
            },
            self.tmp / "home",
        )

    def close(self) -> None:
        for proc in [*self.deployers, *self.releases[1:]]:
            proc.stop()
        self.base.close()


@pytest.fixture
def rack(tmp_path: Path, pg_url: str) -> Iterator[Rack]:
    r = Rack(tmp_path, pg_url)
    try:
        r.start()
        yield r
    finally:
        r.close()


def owner_pid(rack: Rack, app: str) -> int | None:
    """The process id of the Deployer holding ``app``'s lease (owners are host:pid:random)."""
    found = rack.base.rows("deployer", f"SELECT owner FROM deploy_leases WHERE app = '{app}'")
    return int(found[0][0].split(":")[1]) if found else None


def test_kill_9_of_the_deployer_running_a_promote_the_cli_prints_every_event_once_and_succeeds(
    rack: Rack,
) -> None:
    rid = rack.base.new_app("myapp", replicas=REPLICAS)
    env = rack.cli_env()
    cli = subprocess.Popen(
        [str(RELMAN), "releases", "promote", rid, "-a", "myapp"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert cli.stdout is not None
    # Read the CLI's output as it comes, in a thread (the test waits on conditions).
    reader = threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in cli.stdout or ()), daemon=True
    )
    reader.start()
    try:
        wait_for(
            lambda: sum(" system/k8s/" in line for line in lines) >= 4,
            timeout=60,
            what="the promote's first events",
        )
        pid = owner_pid(rack, "myapp")
        assert pid is not None
        [owner] = [d for d in rack.deployers if d.proc is not None and d.proc.pid == pid]
        owner.kill9()
        killed = time.monotonic()
        shown_before_kill = len(lines)
        code = cli.wait(timeout=LEASE_TTL + 60)
        ended_after = time.monotonic() - killed
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.wait(10)
        reader.join(10)
    err = cli.stderr.read() if cli.stderr else ""
    assert code == 0, (lines[-5:], err)
    survivor = next(d for d in rack.deployers if d is not owner)
    assert survivor.proc is not None and survivor.proc.poll() is None
    # Every event of the deployment, as stored, printed once and in order, then OK.
    [(deployment_id,)] = rack.base.rows("deployer", "SELECT id FROM deployments")
    stored = rack.base.rows(
        "deployer",
        f"SELECT seq, message FROM deployment_events WHERE deployment_id = '{deployment_id}' "
        "ORDER BY seq",
    )
    printed = [line.split(" ", 2)[2] for line in lines if " system/k8s/" in line]
    assert printed == [message for _, message in stored]
    assert lines[0] == f"Promoting {rid}..." and lines[-1] == "OK"
    assert len(lines) == len(stored) + 2
    taken_over = "resuming" in survivor.logs()
    assert taken_over
    figure(
        "failover-promote-kill-9",
        f"kill -9 of the owning Deployer after {shown_before_kill - 1} events: the CLI "
        f"re-attached to the other Deployer, printed all {len(stored)} events once and exited "
        f"0 {ended_after:.1f} s after the kill (lease TTL {LEASE_TTL:g} s, pods "
        f"{POD_DELAY:g} s each, {REPLICAS} replicas) (postgres)",
        events=len(stored),
        seconds_after_kill=round(ended_after, 2),
        lease_ttl=LEASE_TTL,
    )


def test_kill_9_of_a_release_service_during_env_sets_every_command_ends_ok_once(
    rack: Rack,
) -> None:
    n = 200  # the figure
    rack.base.new_app("myapp")
    env = rack.cli_env()
    # The first address the CLI tries is the one killed: every command meets it (running or
    # dead) first.
    before = len(rack.base.rows("release", "SELECT id FROM releases"))
    started = threading.Event()

    def env_set(i: int) -> tuple[int, str, str]:
        started.set()
        done = run(["env", "set", f"KEY_{i:03d}=v{i}", "-a", "myapp"], env, timeout=120)
        return done.code, done.out, done.err

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(env_set, i) for i in range(n)]
        started.wait(30)
        wait_for(
            lambda: len(rack.base.rows("release", "SELECT id FROM releases")) > before + 3,
            timeout=60,
            what="some env sets to land",
        )
        rack.releases[0].kill9()
        results = [f.result(timeout=180) for f in futures]
    failed = [(code, err) for code, _, err in results if code != 0]
    assert failed == []
    made = rack.base.rows("release", "SELECT description FROM releases")
    env_releases = [d for (d,) in made if d.startswith("env ")]
    assert sorted(env_releases) == sorted(f"env add:KEY_{i:03d}" for i in range(n))
    survivor = release_pb2_grpc.ReleaseServiceStub(rack.base.channel(rack.release_addrs[1]))
    got = survivor.GetEnv(release_pb2.GetEnvRequest(app="myapp"), metadata=rack.base.md())
    assert sorted(got.env) == sorted(f"KEY_{i:03d}" for i in range(n))
    figure(
        "failover-release-kill-9",
        f"kill -9 of one of two Release services during {n} concurrent `relman env set`: "
        f"{n}/{n} ended OK, {len(env_releases)} releases, 0 duplicates (postgres)",
        commands=n,
        releases=len(env_releases),
    )
