"""One model end to end: the Release service parses a manifest with the system's one parser,
sends its services as ServiceSpec messages, and the Deployer deploys exactly that, on the sim
and as the Kubernetes manifests it would write. The Deployer itself never reads YAML.

Every test here runs the real Release service and the real Deployer (gRPC on loopback), on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common.errors import EMPTY_MANIFEST
from relman_common.grpc_errors import error_details
from relman_common.manifest import HTTPS, Health, Port, Scale
from relman_deployer.backends.base import AppSpec, check_spec
from relman_deployer.backends.kubernetes.manifests import deployment_manifest, validate_spec
from support.deployer import ACTOR, RecordingSim, read_stream, set_env
from support.deployer_stack import Stack

SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]

EVERY_FIELD = """\
environment:
  - LOG_LEVEL=info
  - REGION=eu
  - SHARED=from-app
services:
  web:
    build: .
    command: bin/web --tls "a b"
    port: https:5443
    ports: [9090, 9091]
    health: {path: /healthz, grace: 7, interval: 4, timeout: 3}
    scale: {count: 2, cpu: 250, memory: 512}
    termination: {grace: 10}
    deployment: {minimum: 50, maximum: 150}
    environment:
      - SHARED=from-service
      - WEB_ONLY=yes
  worker:
    build: .
    command: [bin/work, --fast]
"""


async def import_build(
    stack: Stack, app: str, manifest: str, images: dict[str, str], *, create: bool = True
) -> str:
    if create:
        await stack.release.CreateApp(release_pb2.CreateAppRequest(name=app), metadata=ACTOR)
    resp = await stack.release.ImportBuild(
        release_pb2.ImportBuildRequest(app=app, manifest=manifest, images=images), metadata=ACTOR
    )
    return str(resp.release.id)


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


async def test_every_manifest_field_reaches_the_sim_and_the_kubernetes_manifests(
    stack: Stack,
) -> None:
    backend = RecordingSim(pod_delay=0.02)
    deployer = await stack.start_deployer(backend=backend)
    images = {"web": "registry.example/shop:web.B1", "worker": "registry.example/shop:worker.B1"}
    await import_build(stack, "shop", EVERY_FIELD, images)
    # The release's env sets one key the manifest has a default for: its value wins.
    rid = await set_env(stack.release, "shop", LOG_LEVEL="debug")
    got = await read_stream(
        deployer.Promote(deployer_pb2.PromoteRequest(app="shop", timeout_seconds=45))
    )
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.last
    assert got.statuses == SUCCESS
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name="shop"))
    assert app.active_release_id == rid

    # What the sim was given: the release's services as the Release service parsed them.
    spec = backend.applied[-1]
    assert (spec.app, spec.release_id, dict(spec.env)) == ("shop", rid, {"LOG_LEVEL": "debug"})
    assert spec.progress_deadline_seconds == 45
    web, worker = spec.services
    assert web.image == images["web"] and worker.image == images["worker"]
    assert web.command == ("bin/web", "--tls", "a b")
    assert worker.command == ("bin/work", "--fast")
    assert web.port == Port(5443, HTTPS)
    assert web.ports == (9090, 9091)
    assert web.health == Health("/healthz", grace=7, interval=4, timeout=3)
    assert web.scale == Scale(count=2, max=2, cpu=250, memory=512)
    assert (web.termination_grace, web.max_surge_percent, web.max_unavailable_percent) == (
        10,
        50,
        50,
    )
    assert (worker.port, worker.termination_grace, worker.replicas) == (None, 30, 1)
    sim_web = backend.sim.status("shop").services[0]
    assert (sim_web.name, sim_web.desired, sim_web.available) == ("web", 2, 2)

    # What the kubernetes backend writes for the same spec.
    validate_spec(spec)
    stored = await stack.orchestrator.store.get(got.first.id)
    dep = deployment_manifest(spec, web, "relman-shop")
    assert dep["spec"]["progressDeadlineSeconds"] == stored.timeout_seconds == 45
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "50%", "maxUnavailable": "50%"}
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 10
    main = main_container(dep)
    assert main["image"] == images["web"]
    assert main["args"] == ["bin/web", "--tls", "a b"]
    assert main["ports"] == [
        {"name": "main", "containerPort": 5443, "protocol": "TCP"},
        {"containerPort": 9090, "protocol": "TCP"},
        {"containerPort": 9091, "protocol": "TCP"},
    ]
    probe = main["readinessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": 5443, "scheme": "HTTPS"}
    assert (probe["initialDelaySeconds"], probe["periodSeconds"], probe["timeoutSeconds"]) == (
        7,
        4,
        3,
    )
    assert main["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    # Manifest defaults only for the keys the release's env lacks (LOG_LEVEL is set there);
    # the service's own entry wins over the app's for the same key.
    assert main["env"] == [
        {"name": "REGION", "value": "eu"},
        {"name": "SHARED", "value": "from-service"},
        {"name": "WEB_ONLY", "value": "yes"},
    ]
    assert main["envFrom"] == [{"secretRef": {"name": f"env-{rid.lower()}"}}]

    worker_main = main_container(deployment_manifest(spec, worker, "relman-shop"))
    assert "readinessProbe" not in worker_main and "ports" not in worker_main
    assert "resources" not in worker_main
    assert worker_main["env"] == [
        {"name": "REGION", "value": "eu"},
        {"name": "SHARED", "value": "from-app"},
    ]


# Manifests the Release service accepts, each with what the Deployer must deploy for it.
ACCEPTED: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "https port": (
        "services:\n  web:\n    build: .\n    port: https:443\n",
        {"web": "registry.example/app:web.1"},
        {"port": Port(443, HTTPS), "health": Health()},
    ),
    "plain port and health path": (
        "services:\n  web:\n    build: .\n    port: 5000\n    health: /up\n",
        {"web": "registry.example/app:web.1"},
        {"port": Port(5000), "health": Health(path="/up")},
    ),
    "image from the manifest, no port": (
        "services:\n  worker:\n    image: registry.example/tools:1.4\n    command: run\n",
        {},
        {"image": "registry.example/tools:1.4", "port": None, "command": ("run",)},
    ),
    "the build's image wins over the manifest's": (
        "services:\n  web:\n    image: from-manifest\n",
        {"web": "registry.example/app:from-build"},
        {"image": "registry.example/app:from-build"},
    ),
    "scale range and deployment percentages": (
        "services:\n  web:\n    build: .\n    scale: {count: 1-4}\n"
        "    deployment: {minimum: 25, maximum: 100}\n",
        {"web": "registry.example/app:web.1"},
        {"scale": Scale(1, 4), "minimum": 25, "maximum": 100},
    ),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
async def test_a_manifest_the_release_service_accepts_is_deployable(
    stack: Stack, case: str
) -> None:
    manifest, images, expected = ACCEPTED[case]
    backend = RecordingSim(pod_delay=0.01)
    deployer = await stack.start_deployer(backend=backend)
    rid = await import_build(stack, "myapp", manifest, images)
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.last
    spec: AppSpec = backend.applied[-1]
    assert spec.release_id == rid
    (service,) = spec.services
    for attribute, value in expected.items():
        assert getattr(service, attribute) == value, attribute
    check_spec(spec)
    validate_spec(spec)  # the kubernetes backend would write it too
    main = main_container(deployment_manifest(spec, service, "relman-myapp"))
    if service.port is not None:
        assert main["ports"][0]["containerPort"] == service.port.number
        scheme = main["readinessProbe"]["httpGet"].get("scheme", "HTTP")
        assert scheme == service.port.scheme.upper()


async def test_a_release_missing_a_required_env_key_is_refused_before_anything_starts(
    stack: Stack,
) -> None:
    deployer = await stack.start_deployer()
    manifest = "environment:\n  - DATABASE_URL\nservices:\n  web:\n    build: .\n    port: 5000\n"
    await import_build(stack, "myapp", manifest, {"web": "registry.example/app:web.1"})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "requires env DATABASE_URL" in (err.value.details() or "")
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert list(listed.deployments) == []
    # Once the release has it, the same manifest deploys.
    await set_env(stack.release, "myapp", DATABASE_URL="postgres://db/app")
    got = await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED


@pytest.mark.parametrize("manifest", ["", "services: {}\n", "environment: [A=1]\n"])
async def test_a_build_without_services_is_refused_as_an_empty_manifest(
    stack: Stack, manifest: str
) -> None:
    deployer = await stack.start_deployer()
    await import_build(stack, "myapp", manifest, {})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read_stream(deployer.Promote(deployer_pb2.PromoteRequest(app="myapp")))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "can not promote a release with an empty manifest"
    assert error_details(err.value)[0] == EMPTY_MANIFEST
    listed = await deployer.ListDeployments(deployer_pb2.ListDeploymentsRequest(app="myapp"))
    assert list(listed.deployments) == []
