"""Crashes of real processes: ``kill -9`` of the Deployer mid-rollout, ``kill -9`` of the Release
service during a burst of writes, and the Release service down while a rollout completes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common.lifecycle import Outcome
from relman_common.pb_enums import word
from relman_common.secretbox import SecretBox
from relman_release.store.codec import decode_env
from support.deployer import manifest
from support.helpers import wait_for
from support.reliability import LEASE_TTL, Services, db_kind, figure, running_services

pytestmark = pytest.mark.xdist_group("reliability")


@pytest.fixture
def services(tmp_path: Path, db_url: str) -> Iterator[Services]:
    yield from running_services(tmp_path, db_url)


def final_deployment(updates: list[deployer_pb2.DeploymentUpdate]) -> deployer_pb2.Deployment:
    assert updates and updates[-1].HasField("deployment"), updates[-1:]
    return updates[-1].deployment


def test_kill_9_of_the_deployer_mid_rollout_frees_the_lease_and_never_leaves_the_app_stuck(
    services: Services, db_url: str
) -> None:
    s = services
    deployer = s.start_deployer(pod_delay=0.4)
    rid = s.new_app("myapp", replicas=4)
    stream = s.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=s.md())
    first = next(stream).deployment
    seen = [next(stream) for _ in range(4)]  # the rollout is under way
    assert all(u.HasField("event") for u in seen)
    deployer.kill9()
    with pytest.raises(grpc.RpcError):
        list(stream)
    assert s.rows("deployer", "SELECT outcome FROM deployments") == [("running",)]
    assert s.rows("deployer", "SELECT deployment_id FROM deploy_leases") == [(first.id,)]

    restarted = time.monotonic()
    s.start_deployer(pod_delay=0.05)
    wait_for(
        lambda: s.rows("deployer", "SELECT app FROM deploy_leases") == [],
        timeout=60,
        what="the dead owner's lease to be freed",
    )
    freed_after = time.monotonic() - restarted

    updates = list(
        s.deployer.Watch(deployer_pb2.WatchRequest(deployment_id=first.id), metadata=s.md())
    )
    final = final_deployment(updates)
    assert final.outcome in (types_pb2.OUTCOME_SUCCEEDED, types_pb2.OUTCOME_ROLLED_BACK), final
    outcome = word(Outcome, final.outcome)
    seqs = [u.event.seq for u in updates if u.HasField("event")]
    assert seqs == list(range(1, final.last_seq + 1))  # one log across the crash
    app = s.release.GetApp(release_pb2.GetAppRequest(name="myapp"), metadata=s.md())
    if final.outcome == types_pb2.OUTCOME_SUCCEEDED:
        assert app.active_release_id == rid
    # Never stuck updating: the app takes a new promotion at once.
    again = list(s.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=s.md()))
    assert final_deployment(again).outcome == types_pb2.OUTCOME_SUCCEEDED
    figure(
        "deployer-kill-9",
        f"kill -9 mid-rollout, restart -> deployment {outcome}, lease freed "
        f"{freed_after:.1f} s after restart (lease TTL {LEASE_TTL:g} s), next promote "
        f"succeeded ({db_kind(db_url)})",
        outcome=outcome,
        lease_freed_seconds=round(freed_after, 2),
        lease_ttl=LEASE_TTL,
        db=db_kind(db_url),
    )


@dataclass
class Acked:
    """What the Release service acknowledged: release id -> (app, build id, exact env)."""

    releases: dict[str, tuple[str, str, dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, release: release_pb2.Release) -> None:
        with self.lock:
            self.releases[release.id] = (release.app, release.build_id, dict(release.env))

    def __len__(self) -> int:
        with self.lock:
            return len(self.releases)


def write_until_refused(s: Services, app: str, client: int, acked: Acked) -> int:
    """One client: env changes, and every fifth write a build import, until a call fails.
    The number of writes acknowledged."""
    done = 0
    while True:
        try:
            if done % 5 == 4:
                resp = s.release.ImportBuild(
                    release_pb2.ImportBuildRequest(
                        app=app,
                        manifest=manifest(1),
                        images={"web": f"registry.example/{app}:c{client}.{done}"},
                        description=f"build by client {client} #{done}",
                    ),
                    metadata=s.md(f"client{client}"),
                    timeout=10,
                )
            else:
                resp = s.release.ChangeEnv(
                    release_pb2.ChangeEnvRequest(
                        app=app, set={f"C{client}_{done}": f"v={done}\nclient {client}"}
                    ),
                    metadata=s.md(f"client{client}"),
                    timeout=10,
                )
        except grpc.RpcError:
            return done
        acked.add(resp.release)
        done += 1


def test_kill_9_of_the_release_service_during_a_burst_keeps_every_acknowledged_release(
    services: Services, db_url: str
) -> None:
    s = services
    apps = ("alpha", "beta")
    for app in apps:
        s.new_app(app, replicas=1)
    acked = Acked()
    clients = 6
    with ThreadPoolExecutor(clients) as pool:
        runs = [pool.submit(write_until_refused, s, apps[i % 2], i, acked) for i in range(clients)]
        wait_for(lambda: len(acked) >= 60, timeout=60, what="60 acknowledged writes")
        s.release_proc.kill9()
        writes = [run.result(timeout=30) for run in runs]
    assert sum(writes) == len(acked)

    s.start_release()
    for rid, (app, build_id, env) in acked.releases.items():
        got = s.release.GetRelease(release_pb2.GetReleaseRequest(app=app, id=rid), metadata=s.md())
        assert (got.build_id, dict(got.env)) == (build_id, env), rid

    # No partial rows: every release has its app and build, and its env opens.
    box = SecretBox.from_env_or_file(s.data_dir)
    releases = s.rows("release", "SELECT id, app_id, build_id, env FROM releases")
    builds = {r[0]: r[1] for r in s.rows("release", "SELECT id, app_id FROM builds")}
    app_ids = {r[0] for r in s.rows("release", "SELECT id FROM apps")}
    for rid, app_id, build_id, sealed in releases:
        assert app_id in app_ids, rid
        assert builds.get(build_id) == app_id, (rid, build_id)
        decode_env(sealed, box, rid)
    assert {r[0] for r in releases} >= set(acked.releases)
    figure(
        "release-kill-9",
        f"kill -9 during {clients} concurrent writers -> {len(acked)}/{len(acked)} acknowledged "
        f"releases kept with their exact env; {len(releases)} release rows, {len(builds)} builds, "
        f"0 partial ({db_kind(db_url)})",
        acknowledged=len(acked),
        release_rows=len(releases),
        build_rows=len(builds),
        db=db_kind(db_url),
    )


def test_release_service_down_while_a_rollout_completes_then_the_release_becomes_active(
    services: Services, db_url: str
) -> None:
    s = services
    deployer = s.start_deployer(pod_delay=0.3)
    rid = s.new_app("myapp", replicas=2)
    stream = s.deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=s.md())
    first = next(stream).deployment
    next(stream)  # under way
    s.release_proc.stop()  # down while the rollout completes
    down = time.monotonic()
    wait_for(
        lambda: "release service unavailable" in deployer.logs() and "retrying" in deployer.logs(),
        timeout=60,
        what="the Deployer to retry the unavailable Release service",
    )
    retries_before = deployer.logs().count("release service unavailable")
    running = s.deployer.GetDeployment(
        deployer_pb2.GetDeploymentRequest(id=first.id), metadata=s.md()
    )
    assert running.outcome == types_pb2.OUTCOME_RUNNING  # it waits to tell the Release service

    s.start_release()  # same port, same data dir
    back = time.monotonic()
    wait_for(
        lambda: s.release.GetApp(
            release_pb2.GetAppRequest(name="myapp"), metadata=s.md(), timeout=5
        ).active_release_id
        == rid,
        timeout=60,
        what="the release to become active",
    )
    active_after = time.monotonic() - back
    rest = list(stream)
    assert final_deployment(rest).outcome == types_pb2.OUTCOME_SUCCEEDED
    listed = s.release.ListReleases(release_pb2.ListReleasesRequest(app="myapp"), metadata=s.md())
    assert {r.id: r.status for r in listed.releases}[rid] == release_pb2.RELEASE_STATUS_ACTIVE
    figure(
        "release-down-rollout",
        f"Release service down {back - down:.1f} s while a rollout completed -> Deployer retried "
        f"{retries_before} times with backoff; release active {active_after:.1f} s after the "
        f"Release service returned ({db_kind(db_url)})",
        retries=retries_before,
        down_seconds=round(back - down, 2),
        active_after_seconds=round(active_after, 2),
        db=db_kind(db_url),
    )
