"""A promote's dry run on the real control plane: the Deployer's PlanPromotion with the
``kubernetes`` backend diffs the live objects against the API server's answers to a dry-run
apply, and the cluster is left exactly as it was (every object's resourceVersion unchanged,
no new Secret)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from kubernetes import client as k8s
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_cli.commands._plan import object_diff
from relman_common.manifest import Port, Scale, Service
from relman_deployer.backends.base import AppSpec
from relman_deployer.backends.kubernetes import KubernetesBackend
from relman_deployer.domain.plan import Change
from support.deployer import ACTOR, read_stream
from support.k8s_cluster import KubeCluster

from .test_kubernetes_deployer import DEADLINE, Services, import_build, services

__all__ = ["services"]

pytestmark = pytest.mark.xdist_group("kube")

SERVER_MANAGED = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")


def versions(kube_cluster: KubeCluster, ns: str) -> dict[tuple[str, str], str]:
    """``{(kind, name): resourceVersion}`` of the namespace and what relman writes in it, and
    of the ReplicaSets and pods the controllers made from that."""
    api = kube_cluster.new_api_client()
    try:
        core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        found = {("Namespace", ns): core.read_namespace(ns).metadata.resource_version}
        listed: list[tuple[str, Any]] = [
            ("Secret", core.list_namespaced_secret(ns)),
            ("Deployment", apps.list_namespaced_deployment(ns)),
            ("ReplicaSet", apps.list_namespaced_replica_set(ns)),
            ("Pod", core.list_namespaced_pod(ns)),
        ]
        for kind, objects in listed:
            for obj in objects.items:
                found[(kind, obj.metadata.name)] = obj.metadata.resource_version
        return found
    finally:
        api.close()


async def settled(kube_cluster: KubeCluster, ns: str) -> dict[tuple[str, str], str]:
    """The versions once two reads in a row agree (the controllers' last status writes after
    a rollout are done), within the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    last = await asyncio.to_thread(versions, kube_cluster, ns)
    while True:
        await asyncio.sleep(0.5)
        now = await asyncio.to_thread(versions, kube_cluster, ns)
        if now == last:
            return now
        assert loop.time() < deadline, "the namespace kept changing"
        last = now


async def test_plan_diffs_an_image_change_and_leaves_the_cluster_as_it_was(
    services: Services, kube_cluster: KubeCluster, app_name: str
) -> None:
    ns = f"relman-{app_name}"
    await services.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    good = await import_build(services, app_name, "BGOOD")
    promote = services.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR)
    got = await asyncio.wait_for(read_stream(promote), DEADLINE)
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages
    new = await import_build(services, app_name, "BNEW")
    changed = await services.release.ChangeEnv(
        release_pb2.ChangeEnvRequest(app=app_name, set={"API_KEY": "hunter2"}), metadata=ACTOR
    )
    latest = changed.release.id
    assert latest != new
    before = await settled(kube_cluster, ns)

    plan = await services.deployer.PlanPromotion(
        deployer_pb2.PromoteRequest(app=app_name), metadata=ACTOR
    )
    assert (plan.backend, plan.release_id, plan.active_release_id) == (
        "kubernetes",
        latest,
        good,
    )
    assert plan.changed
    (web,) = plan.services
    assert (web.old_image, web.new_image) == (
        f"registry.example/{app_name}:web.BGOOD",
        f"registry.example/{app_name}:web.BNEW",
    )
    objects = {(o.kind, o.name): o for o in plan.objects}
    secret = f"env-{latest.lower()}"
    assert {k: o.change for k, o in objects.items()} == {
        ("Namespace", ns): deployer_pb2.CHANGE_CHANGED,
        ("Secret", secret): deployer_pb2.CHANGE_ADDED,
        ("Deployment", "web"): deployer_pb2.CHANGE_CHANGED,
    }

    deployment = objects[("Deployment", "web")]
    old, after = json.loads(deployment.before_json), json.loads(deployment.after_json)
    for side in (old, after):
        assert "status" not in side
        assert not set(SERVER_MANAGED) & set(side["metadata"])
    # The server's answer, not our manifest: defaults it fills in are there.
    container = after["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example/{app_name}:web.BNEW"
    assert container["imagePullPolicy"] and after["spec"]["revisionHistoryLimit"] == 10
    assert container["envFrom"] == [{"secretRef": {"name": secret}}]
    diff = object_diff(deployment, mask=True)
    assert diff[:2] == ["--- a/Deployment/web", "+++ b/Deployment/web"]
    # Changed are the image, the env Secret and the release and build annotations: no
    # server-managed field or default shows as a change.
    changed_lines = [line for line in diff[2:] if line[:1] in "+-"]
    old_build, new_build = old["metadata"]["annotations"]["relman.io/build"], plan.build_id
    assert changed_lines == [
        f"-    relman.io/build: {old_build}",
        f"-    relman.io/release: {good}",
        f"+    relman.io/build: {new_build}",
        f"+    relman.io/release: {latest}",
        f"-        relman.io/release: {good}",
        f"+        relman.io/release: {latest}",
        f"-            name: env-{good.lower()}",
        f"-        image: registry.example/{app_name}:web.BGOOD",
        f"+            name: {secret}",
        f"+        image: registry.example/{app_name}:web.BNEW",
    ], diff

    # The Secret as the dry-run create answered: the env, masked by the client unless asked.
    made = objects[("Secret", secret)]
    assert json.loads(made.after_json)["data"] == {"API_KEY": base64.b64encode(b"hunter2").decode()}
    assert not [line for line in object_diff(made, mask=True) if "aHVudGVyMg" in line]
    assert "+  API_KEY: '****'" in object_diff(made, mask=True)

    # Nothing changed on the cluster: no write to any object, no Secret created.
    assert await asyncio.to_thread(versions, kube_cluster, ns) == before
    assert ("Secret", secret) not in before
    listed = await services.deployer.ListDeployments(
        deployer_pb2.ListDeploymentsRequest(app=app_name)
    )
    assert len(listed.deployments) == 1


async def test_plan_of_a_new_app_creates_no_namespace(
    backend: KubernetesBackend, kube_cluster: KubeCluster, app_name: str
) -> None:
    web = Service("web", f"registry.example/{app_name}:web.B1", port=Port(5000), scale=Scale(2, 2))
    spec = AppSpec(app_name, "RAAAAAAAAAA", "BAAAAAAAAAA", {"A": "1"}, (web,))
    plans = await backend.plan(spec)
    ns = f"relman-{app_name}"
    assert [(p.kind, p.name, p.change) for p in plans] == [
        ("Namespace", ns, Change.ADDED),
        ("Secret", "env-raaaaaaaaaa", Change.ADDED),
        ("Deployment", "web", Change.ADDED),
    ]
    namespace = plans[0].after
    assert namespace is not None
    assert namespace["metadata"]["annotations"]["relman.io/release"] == "RAAAAAAAAAA"
    api = kube_cluster.new_api_client()
    try:
        names = [n.metadata.name for n in k8s.CoreV1Api(api).list_namespace().items]
    finally:
        api.close()
    assert ns not in names


async def test_plan_shows_a_dropped_service_as_removed_and_deletes_nothing(
    backend: KubernetesBackend, kube_cluster: KubeCluster, app_name: str
) -> None:
    web = Service("web", f"registry.example/{app_name}:web.B1", port=Port(5000))
    worker = Service("worker", f"registry.example/{app_name}:worker.B1")
    await backend.apply(AppSpec(app_name, "RAAAAAAAAAA", "BAAAAAAAAAA", {}, (web, worker)))
    ns = f"relman-{app_name}"
    before = await settled(kube_cluster, ns)

    plans = await backend.plan(AppSpec(app_name, "RBBBBBBBBBB", "BAAAAAAAAAA", {}, (web,)))
    assert [(p.kind, p.name, p.change) for p in plans] == [
        ("Namespace", ns, Change.CHANGED),
        ("Secret", "env-rbbbbbbbbbb", Change.ADDED),
        ("Deployment", "web", Change.CHANGED),
        ("Deployment", "worker", Change.REMOVED),
    ]
    removed = plans[-1]
    assert removed.after is None and removed.before is not None
    assert removed.before["metadata"]["name"] == "worker"
    # The same release again: only what the server would leave as it is.
    again = await backend.plan(AppSpec(app_name, "RAAAAAAAAAA", "BAAAAAAAAAA", {}, (web, worker)))
    assert {p.change for p in again} == {Change.UNCHANGED}, [
        (p.kind, p.name, p.before, p.after) for p in again if p.change is not Change.UNCHANGED
    ]
    assert await asyncio.to_thread(versions, kube_cluster, ns) == before
