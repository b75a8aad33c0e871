"""The Deployer service driving the ``kubernetes`` backend on the real control plane: a promote
streams the cluster's own events and a crash-looping release is rolled back by itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from kubernetes import client as k8s
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common import tokens
from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.release_client import CHANNEL_OPTIONS
from support.containers import Registry
from support.deployer import ACTOR, read_stream
from support.deployer_stack import Stack
from support.helpers import aio_token_interceptors, free_port
from support.k8s_cluster import KubeCluster

pytestmark = pytest.mark.xdist_group("kube")

DEADLINE = 120.0


@dataclass
class Services:
    release: release_pb2_grpc.ReleaseServiceStub
    deployer: deployer_pb2_grpc.DeployerServiceStub
    stack: Stack
    kubeconfig: str
    sqlite_url: str
    current: DeployerService | None = None
    # RELMAN_SCHEDULING_GRACE of the Deployers start_deployer() starts.
    scheduling_grace: float = 30.0

    async def start_deployer(self) -> None:
        """A (new) Deployer on the same database, backed by the local control plane."""
        addr = f"127.0.0.1:{free_port()}"
        deployer = DeployerService(
            addr,
            Settings(
                database_url=self.sqlite_url,
                release_addr=self.stack.release_addr,
                backend="kubernetes",
                backend_options={"kubeconfig": self.kubeconfig},
                lease_ttl=5.0,
                scheduling_grace=self.scheduling_grace,
                auth=True,
                token_file=self.stack.data_dir / tokens.DEPLOYER_TOKEN_FILE,
            ),
        )
        await deployer.start()
        self.stack.deployers.append(deployer)  # stopped by stack.close()
        self.current = deployer
        channel = grpc.aio.insecure_channel(
            addr,
            options=CHANNEL_OPTIONS,
            interceptors=aio_token_interceptors(self.stack.token_for),
        )
        self.stack._channels.append(channel)  # closed by stack.close()
        self.deployer = deployer_pb2_grpc.DeployerServiceStub(channel)


@pytest.fixture
async def services(
    kube_cluster: KubeCluster, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[Services]:
    """The Deployer's test stack (Release service, tokens, authentication), with a Deployer
    whose backend is ``kubernetes`` on the local control plane."""
    stack = Stack(sqlite_url, tmp_path / "release")
    await stack.start_release()
    try:
        services = Services(
            stack.release,
            None,  # type: ignore[arg-type]  # set by start_deployer
            stack,
            str(kube_cluster.kubeconfig),
            sqlite_url,
        )
        await services.start_deployer()
        yield services
    finally:
        await stack.close()


async def import_build(services: Services, app: str, tag: str) -> str:
    resp = await services.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app,
            manifest="services:\n  web:\n    build: .\n    port: 5000\n    scale: {count: 2}\n",
            images={"web": f"registry.example/{app}:web.{tag}"},
            description=f"build {tag}",
        ),
        metadata=ACTOR,
    )
    return str(resp.release.id)


async def test_promote_streams_cluster_events_and_a_crashing_release_rolls_back(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    good = await import_build(services, app_name, "BGOOD")
    promote = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages
    messages = got.messages
    assert any(m.startswith("Scaled up replica set web-") for m in messages)
    assert any(m.startswith(f"Successfully assigned relman-{app_name}/web-") for m in messages)
    assert f'Pulling image "registry.example/{app_name}:web.BGOOD"' in messages

    bad = await import_build(services, app_name, "crash")
    promote = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK, (got.last.reason, got.messages)
    assert "Back-off restarting failed container" in got.messages
    assert got.first.release_id == bad and got.first.previous_release_id == good
    app = await services.release.GetApp(release_pb2.GetAppRequest(name=app_name))
    assert app.active_release_id == good

    api = kube_cluster.new_api_client()
    try:
        web = await asyncio.to_thread(
            k8s.AppsV1Api(api).read_namespaced_deployment, "web", f"relman-{app_name}"
        )
    finally:
        api.close()
    assert web.metadata.annotations["relman.io/release"] == good
    assert web.status.available_replicas == 2


async def test_a_stuck_release_fails_at_its_deadline_in_the_controllers_words(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    good = await import_build(services, app_name, "BGOOD")
    promote = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages

    await import_build(services, app_name, "unready")
    promote = services.deployer.Promote(
        deployer_pb2.PromoteRequest(app=app_name, timeout_seconds=3), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK, (got.last.reason, got.messages)
    # kube-controller-manager's verdict, worded as the sim words it (test_deployer_service.py).
    assert re.fullmatch(r'web: ReplicaSet "web-\w+" has timed out progressing\.', got.last.reason)
    app = await services.release.GetApp(release_pb2.GetAppRequest(name=app_name))
    assert app.active_release_id == good
    web = await read_web(kube_cluster, app_name)
    assert web.spec.progress_deadline_seconds == 3  # the deployment's (and its rollback's)
    assert web.metadata.annotations["relman.io/release"] == good
    assert web.status.available_replicas == 2


async def read_web(kube_cluster: KubeCluster, app: str) -> k8s.V1Deployment:
    api = kube_cluster.new_api_client()
    try:
        return await asyncio.to_thread(
            k8s.AppsV1Api(api).read_namespaced_deployment, "web", f"relman-{app}"
        )
    finally:
        api.close()


async def test_cancel_turns_a_stuck_rollout_into_a_rollback_on_the_cluster(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    good = await import_build(services, app_name, "BGOOD")
    got = await asyncio.wait_for(
        read_stream(
            services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
        ),
        DEADLINE,
    )
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages

    await import_build(services, app_name, "unready")
    stream = services.deployer.Promote(
        deployer_pb2.PromoteRequest(app=app_name, timeout_seconds=600), metadata=ACTOR
    )
    part = await asyncio.wait_for(read_stream(stream, max_events=3), DEADLINE)
    cancelled = await services.deployer.Cancel(
        deployer_pb2.CancelRequest(app=app_name), metadata=ACTOR
    )
    assert cancelled.id == part.first.id
    watch = services.deployer.Watch(
        deployer_pb2.WatchRequest(deployment_id=part.first.id), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(watch), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_CANCELLED, (
        got.last,
        got.messages,
    )
    app = await services.release.GetApp(release_pb2.GetAppRequest(name=app_name))
    assert app.active_release_id == good
    web = await read_web(kube_cluster, app_name)
    assert web.metadata.annotations["relman.io/release"] == good
    assert web.status.available_replicas == 2


async def test_a_restarted_deployer_finishes_a_rollout_it_did_not_start(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    release = await import_build(services, app_name, "BFIRST")
    stream = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
    part = await asyncio.wait_for(read_stream(stream, max_events=2), DEADLINE)
    stream.cancel()
    assert services.current is not None
    await services.current.stop(grace=0)  # hands its deployments over

    await services.start_deployer()
    watch = services.deployer.Watch(
        deployer_pb2.WatchRequest(deployment_id=part.first.id), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(watch), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, (
        got.last,
        got.messages,
    )
    assert [e.seq for e in got.events] == list(range(1, len(got.events) + 1))
    app = await services.release.GetApp(release_pb2.GetAppRequest(name=app_name))
    assert app.active_release_id == release
    web = await read_web(kube_cluster, app_name)
    assert web.metadata.annotations["relman.io/release"] == release
    assert web.status.available_replicas == 2


async def test_a_promoted_https_service_gets_an_https_readiness_probe_on_the_cluster(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    """``port: https:5443`` travels from the manifest (parsed by the Release service) to the
    Deployment the API server stores: the probe speaks HTTPS to the container's TLS port."""
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    manifest = (
        "services:\n  web:\n    build: .\n    port: https:5443\n    ports: [9090]\n"
        "    health: {path: /healthz, grace: 1, interval: 2, timeout: 1}\n"
        "    scale: {count: 2, cpu: 100, memory: 64}\n    termination: {grace: 10}\n"
    )
    resp = await services.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app_name, manifest=manifest, images={"web": f"registry.example/{app_name}:web.1"}
        ),
        metadata=ACTOR,
    )
    promote = services.deployer.Promote(
        deployer_pb2.PromoteRequest(app=app_name, timeout_seconds=120), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None, got.messages
    assert got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, (got.last.reason, got.messages)

    web = await read_web(kube_cluster, app_name)
    assert web.metadata.annotations["relman.io/release"] == resp.release.id
    assert web.spec.progress_deadline_seconds == 120
    pod = web.spec.template.spec
    assert pod.termination_grace_period_seconds == 10
    (main,) = pod.containers
    assert [(p.container_port, p.protocol) for p in main.ports] == [(5443, "TCP"), (9090, "TCP")]
    get = main.readiness_probe.http_get
    assert (get.scheme, get.port, get.path) == ("HTTPS", 5443, "/healthz")
    assert main.resources.requests == {"cpu": "100m", "memory": "64Mi"}
    assert main.resources.limits == {"memory": "64Mi"}


async def promote_to_failure(
    services: Services,
    app: str,
    image: str,
    command: str = "",
    deadline: int = 3600,
    scale: str = "{count: 2}",
    env: dict[str, str] | None = None,
) -> deployer_pb2.Deployment:
    """Promote a good release, then one of ``image`` (and ``command``); the second
    deployment as it ended. ``deadline``: far longer than the test may take, so an end before
    it was decided by fail-fast."""
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app), metadata=ACTOR)
    await import_build(services, app, "BGOOD")
    promote = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages
    run = f"    command: {command}\n" if command else ""
    await services.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app,
            manifest=f"services:\n  web:\n    build: .\n    port: 5000\n{run}    scale: {scale}\n",
            images={"web": image},
        ),
        metadata=ACTOR,
    )
    if env:
        await services.release.ChangeEnv(
            release_pb2.ChangeEnvRequest(app=app, set=env), metadata=ACTOR
        )
    promote = services.deployer.Promote(
        deployer_pb2.PromoteRequest(app=app, timeout_seconds=deadline), metadata=ACTOR
    )
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK, (got.last.reason, got.messages)
    return got.last


async def test_an_image_the_registry_lacks_rolls_back_at_once_with_diagnostics(
    services: Services, kube_cluster: KubeCluster, app_name: str, registry: Registry
) -> None:
    image = f"{registry.addr}/relman-test/{app_name}:missing"
    ended = await promote_to_failure(services, app_name, image)
    pod = r"web-\w+-\w{5}"
    assert re.fullmatch(
        rf'pods of web cannot pull image "{re.escape(image)}": ImagePullBackOff \(pod {pod}\)',
        ended.reason,
    ), ended.reason
    web = await read_web(kube_cluster, app_name)
    assert web.status.available_replicas == 2  # the previous release serves again

    # deployments info's data: the failing pods and the kubelet's warnings, kept after the end.
    info = await services.deployer.GetDeployment(
        deployer_pb2.GetDeploymentRequest(id=ended.id), metadata=ACTOR
    )
    (diag,) = info.diagnostics
    assert (diag.name, diag.desired) == ("web", 2)
    assert "ImagePullBackOff" in {p.reason for p in diag.pods}
    assert all(re.fullmatch(pod, p.name) and not p.ready for p in diag.pods)
    warnings = {(e.reason, e.message) for e in diag.events}
    # The kubelet's own words; its event for the back-off may come after the pod's state that
    # ended the rollout (events and status are written apart), so either error event counts.
    assert warnings & {("Failed", "Error: ErrImagePull"), ("Failed", "Error: ImagePullBackOff")}
    assert any(m.startswith(f'Failed to pull image "{image}": ') for _, m in warnings)


async def test_a_command_that_exits_rolls_back_on_crash_loop_back_off(
    services: Services, app_name: str
) -> None:
    ended = await promote_to_failure(
        services,
        app_name,
        f"registry.example/{app_name}:web.2",
        command='sh -c "exit 3"',
        env={"RELMAN_KUBELET_LOG": "starting web\nerror: cannot reach the database"},
    )
    assert re.fullmatch(
        r"pods of web crash-looping \(restarted 3 times\): CrashLoopBackOff, "
        r"last exit Error \(code 3\) \(pod web-\w+-\w{5}\)",
        ended.reason,
    ), ended.reason
    info = await services.deployer.GetDeployment(
        deployer_pb2.GetDeploymentRequest(id=ended.id), metadata=ACTOR
    )
    crashed = [p for p in info.diagnostics[0].pods if p.last_termination == "Error"]
    assert crashed and all(p.exit_code == 3 for p in crashed)
    # The last lines of the failing pods, through the API server's pods/log (their last run).
    logged = [p for p in crashed if p.logs]
    assert logged, crashed
    assert all(list(p.logs) == ["starting web", "error: cannot reach the database"] for p in logged)


async def test_a_memory_limit_exceeded_rolls_back_on_oom_killed(
    services: Services, app_name: str
) -> None:
    ended = await promote_to_failure(
        services,
        app_name,
        f"registry.example/{app_name}:web.2",
        scale="{count: 2, memory: 64}",
        env={"RELMAN_KUBELET_MEMORY_USAGE": "100Mi"},
    )
    assert re.fullmatch(
        r"pods of web ran out of memory: OOMKilled \(pod web-\w+-\w{5}\)", ended.reason
    ), ended.reason


async def test_pods_no_node_can_take_roll_back_after_the_scheduling_grace(
    services: Services, app_name: str
) -> None:
    services.scheduling_grace = 2.0
    await services.start_deployer()
    ended = await promote_to_failure(
        services, app_name, f"registry.example/{app_name}:web.2", scale="{count: 2, cpu: 100000}"
    )
    assert re.fullmatch(
        r"pods of web cannot be scheduled for 2s: FailedScheduling: 0/\d+ nodes are "
        r"available: \d+ Insufficient cpu\. \(pod web-\w+-\w{5}\)",
        ended.reason,
    ), ended.reason
    info = await services.deployer.GetDeployment(
        deployer_pb2.GetDeploymentRequest(id=ended.id), metadata=ACTOR
    )
    assert any("Insufficient cpu" in p.unschedulable for p in info.diagnostics[0].pods)
    assert any(e.reason == "FailedScheduling" for e in info.diagnostics[0].events)
