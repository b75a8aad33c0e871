"""End to end: ``python -m relman_release`` and ``python -m relman_deployer`` as real processes,
driven through their gRPC APIs and the ``relman`` command, with the real sim backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common.db import make_engine
from relman_common.lifecycle import ReleaseStatus
from relman_common.pb_enums import word
from sqlalchemy import text
from support.deployer import EVENT_LINE, manifest
from support.helpers import ServiceProcess, authorized, free_port, read_token

RELMAN = Path(sys.executable).parent / "relman"


class Processes:
    """A Release service and a Deployer; the Deployer can be killed and started again.

    As under ``make run``: authentication on (the default), one data dir for both, where the
    Release service writes the tokens; the test's channels carry the admin token from there.
    """

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp = tmp_path
        self.database_url = database_url
        self.release_addr = f"127.0.0.1:{free_port()}"
        self.deployer_addr = f"127.0.0.1:{free_port()}"
        env = {"RELMAN_DATABASE_URL": database_url}
        self.release_proc = ServiceProcess(
            "relman_release",
            ["--addr", self.release_addr, "--data-dir", str(tmp_path / "data")],
            env=env,
            log_path=tmp_path / "release.log",
        )
        self.deployer_proc: ServiceProcess | None = None
        self._channels: list[grpc.Channel] = []
        self.release = release_pb2_grpc.ReleaseServiceStub(self._channel(self.release_addr))
        self.deployer = deployer_pb2_grpc.DeployerServiceStub(self._channel(self.deployer_addr))

    def admin_token(self) -> str:
        return read_token(self.tmp / "data")

    def _channel(self, addr: str) -> grpc.Channel:
        channel = grpc.insecure_channel(addr, options=[("grpc.max_reconnect_backoff_ms", 500)])
        self._channels.append(channel)
        return authorized(channel, self.admin_token)

    def start_deployer(self, pod_delay: float = 0.05) -> ServiceProcess:
        self.deployer_proc = ServiceProcess(
            "relman_deployer",
            [
                "--addr",
                self.deployer_addr,
                "--release-addr",
                self.release_addr,
                "--data-dir",
                str(self.tmp / "data"),
                "--sim-pod-delay",
                str(pod_delay),
                "--lease-ttl",
                "2",
            ],
            env={"RELMAN_DATABASE_URL": self.database_url},
            log_path=self.tmp / "deployer.log",
        ).start(self.deployer_addr)
        return self.deployer_proc

    def deployer_db_rows(self, sql: str) -> list[tuple[object, ...]]:
        url = self.database_url or f"sqlite:///{self.tmp / 'data' / 'deployer.db'}"
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.deployer_proc is not None:
            self.deployer_proc.stop()
        self.release_proc.stop()


def make_processes(tmp_path: Path, database_url: str) -> Iterator[Processes]:
    p = Processes(tmp_path, database_url)
    p.release_proc.start(p.release_addr)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """On the embedded default: a SQLite file per service under --data-dir."""
    yield from make_processes(tmp_path, "")


@pytest.fixture
def procs_on(tmp_path: Path, db_url: str) -> Iterator[Processes]:
    """Both services on the database of ``db_url``."""
    yield from make_processes(tmp_path, db_url)


def new_app(p: Processes, app: str, replicas: int = 2, **env: str) -> str:
    p.release.CreateApp(release_pb2.CreateAppRequest(name=app))
    resp = p.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app,
            manifest=manifest(replicas),
            images={"web": f"registry.example/{app}:web.B1"},
            description="build 1",
        )
    )
    if env:
        return str(p.release.ChangeEnv(release_pb2.ChangeEnvRequest(app=app, set=env)).release.id)
    return str(resp.release.id)


def outcome_of(updates: list[deployer_pb2.DeploymentUpdate]) -> deployer_pb2.Deployment:
    last = updates[-1]
    assert last.HasField("deployment")
    return last.deployment


def statuses(updates: list[deployer_pb2.DeploymentUpdate]) -> list[str]:
    return [
        u.event.message for u in updates if u.HasField("event") and u.event.reason == "StatusChange"
    ]


def test_promote_succeeds_and_a_crashing_release_rolls_back(procs: Processes) -> None:
    procs.start_deployer()
    good = new_app(procs, "myapp")
    updates = list(procs.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert statuses(updates) == [
        "Status: Running => Pending",
        "Status: Pending => Updating",
        "Status: Updating => Running",
    ]
    assert any(u.event.reason == "ScalingReplicaSet" for u in updates if u.HasField("event"))
    assert outcome_of(updates).outcome == types_pb2.OUTCOME_SUCCEEDED
    app = procs.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == good

    bad = str(
        procs.release.ChangeEnv(
            release_pb2.ChangeEnvRequest(app="myapp", set={"RELMAN_SIM_FAIL": "crash"})
        ).release.id
    )
    updates = list(procs.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert statuses(updates)[-2:] == ["Status: Updating => Rollback", "Status: Rollback => Running"]
    assert outcome_of(updates).outcome == types_pb2.OUTCOME_ROLLED_BACK
    listed = procs.release.ListReleases(release_pb2.ListReleasesRequest(app="myapp"))
    status = {r.id: word(ReleaseStatus, r.status) for r in listed.releases}
    assert (status[good], status[bad]) == ("active", "failed")
    log = procs.deployer_proc.logs() if procs.deployer_proc else ""
    assert "rolled-back (pods of web crash-looping (restarted 3 times): CrashLoopBackOff" in log


def test_a_deployer_started_before_the_release_service_made_its_token_works(
    tmp_path: Path,
) -> None:
    """``make run`` starts both at once: the Deployer may be up before its token file."""
    p = Processes(tmp_path, "")
    try:
        p.start_deployer()
        assert not (tmp_path / "data" / "deployer.token").exists()
        p.release_proc.start(p.release_addr)
        new_app(p, "myapp")
        updates = list(p.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
        assert (outcome_of(updates).outcome, outcome_of(updates).actor) == (
            types_pb2.OUTCOME_SUCCEEDED,
            "admin",
        )
        apps = p.release.ListApps(release_pb2.ListAppsRequest()).apps
        assert [(a.name, a.active_release_id != "") for a in apps] == [("myapp", True)]
    finally:
        p.close()


def test_kill_9_mid_rollout_then_restart_ends_the_deployment(procs_on: Processes) -> None:
    p = procs_on
    deployer = p.start_deployer(pod_delay=0.5)
    rid = new_app(p, "myapp", replicas=4)
    stream = p.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    first = next(stream).deployment
    seen = [next(stream) for _ in range(5)]  # the rollout is under way
    assert all(u.HasField("event") for u in seen)
    deployer.kill9()
    with pytest.raises(grpc.RpcError):
        list(stream)
    assert p.deployer_db_rows("SELECT outcome FROM deployments") == [("running",)]

    p.start_deployer(pod_delay=0.05)
    updates = list(p.deployer.Watch(deployer_pb2.WatchRequest(deployment_id=first.id)))
    final = outcome_of(updates)
    assert final.outcome in (types_pb2.OUTCOME_SUCCEEDED, types_pb2.OUTCOME_ROLLED_BACK), final
    seqs = [u.event.seq for u in updates if u.HasField("event")]
    assert seqs == list(range(1, final.last_seq + 1))  # one log, no gaps, across the crash
    assert p.deployer_db_rows("SELECT app FROM deploy_leases") == []
    if final.outcome == types_pb2.OUTCOME_SUCCEEDED:
        app = p.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
        assert app.active_release_id == rid
    # Not stuck: the app takes another deployment.
    again = list(p.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert outcome_of(again).outcome == types_pb2.OUTCOME_SUCCEEDED


def test_sigterm_hands_the_deployment_over_to_the_next_instance(procs: Processes) -> None:
    deployer = procs.start_deployer(pod_delay=0.5)
    new_app(procs, "myapp", replicas=3)
    stream = procs.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"))
    first = next(stream).deployment
    next(stream)
    stream.cancel()
    assert deployer.stop() == 0
    assert procs.deployer_db_rows("SELECT outcome FROM deployments") == [("running",)]
    lease = procs.deployer_db_rows("SELECT deployment_id FROM deploy_leases")
    assert lease == [(first.id,)]  # kept, but expired: the next instance resumes at once
    ((phase, last_seq),) = procs.deployer_db_rows("SELECT phase, last_seq FROM deployments")
    assert phase in ("pending", "updating")

    procs.start_deployer(pod_delay=0.05)
    updates = list(procs.deployer.Watch(deployer_pb2.WatchRequest(deployment_id=first.id)))
    assert outcome_of(updates).outcome == types_pb2.OUTCOME_SUCCEEDED
    # Resumed from the stored phase: each status line once, one log without gaps.
    assert statuses(updates) == [
        "Status: Running => Pending",
        "Status: Pending => Updating",
        "Status: Updating => Running",
    ]
    seqs = [u.event.seq for u in updates if u.HasField("event")]
    assert seqs == list(range(1, outcome_of(updates).last_seq + 1))
    assert procs.deployer_proc is not None
    assert f"app myapp: resuming ({phase}, last event {last_seq})" in procs.deployer_proc.logs()


def run_cli(p: Processes, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELMAN_")}
    env.update(
        {
            "RELMAN_RELEASE_ADDR": p.release_addr,
            "RELMAN_DEPLOYER_ADDR": p.deployer_addr,
            "RELMAN_DATA_DIR": str(p.tmp / "data"),  # the local admin token, as by make run
            "HOME": str(p.tmp),
            "XDG_CONFIG_HOME": str(p.tmp / ".config"),
        }
    )
    return subprocess.run(
        [str(RELMAN), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.skipif(not RELMAN.exists(), reason="the relman command is not installed")
def test_cli_promote_and_rollback_print_the_seed_lines_and_exit_codes(procs: Processes) -> None:
    procs.start_deployer()
    first = new_app(procs, "myapp")
    done = run_cli(procs, "releases", "promote", first, "-a", "myapp")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Promoting {first}..."
    assert lines[-1] == "OK"
    assert lines[1].endswith(" system/k8s/atom/app Status: Running => Pending")
    assert all(EVENT_LINE.match(line) for line in lines[1:-1]), lines
    assert any(re.search(r" system/k8s/web Scaled up replica set web-\w+ to 2$", x) for x in lines)

    crash = str(
        procs.release.ChangeEnv(
            release_pb2.ChangeEnvRequest(app="myapp", set={"RELMAN_SIM_FAIL": "crash"})
        ).release.id
    )
    done = run_cli(procs, "releases", "promote", crash, "-a", "myapp")
    assert done.returncode != 0
    assert "Status: Rollback => Running" in done.stdout
    assert "ERROR: " in done.stderr and "rolled back" in done.stderr

    done = run_cli(procs, "releases", "rollback", first, "-a", "myapp")
    assert done.returncode == 0, done.stderr
    head = done.stdout.splitlines()[0]
    match = re.fullmatch(rf"Rolling back to {first}\.\.\. OK, (R[A-Z]{{10}})", head)
    assert match, head
    app = procs.release.GetApp(release_pb2.GetAppRequest(name="myapp"))
    assert app.active_release_id == match.group(1)
    assert done.stdout.splitlines()[-1] == "OK"
