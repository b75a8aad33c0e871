"""End-to-end check of the local control plane + kubelet emulator (real apiserver, real
deployment/replicaset controllers, real scheduler)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from support.k8s_cluster import KubeCluster

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2
) -> T:
    """Poll fn until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
        time.sleep(interval)


@pytest.fixture()
def api(kube_cluster: KubeCluster) -> Iterator[k8s.ApiClient]:
    c = k8s_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    try:
        yield c
    finally:
        c.close()


def deployment_body(name: str, image: str, replicas: int = 3) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def rollout_complete(apps: k8s.AppsV1Api, ns: str, name: str) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    st = d.status
    want = d.spec.replicas
    return bool(
        (st.observed_generation or 0) >= d.metadata.generation
        and (st.updated_replicas or 0) == want
        and (st.replicas or 0) == want
        and (st.available_replicas or 0) == want
        and not st.unavailable_replicas
    )


def reasons(core: k8s.CoreV1Api, ns: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in core.list_namespaced_event(ns).items:
        out[ev.reason] = out.get(ev.reason, 0) + (ev.count or 1)
    return out


def test_nodes_registered(kube_cluster: KubeCluster, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert set(kube_cluster.nodes) <= set(nodes)
    for name in kube_cluster.nodes:
        ready = [c for c in nodes[name].status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_rolling_update_and_crash(kube_cluster: KubeCluster, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    apps = k8s.AppsV1Api(api)
    ns = f"rt-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    name = "web"

    t0 = time.monotonic()
    apps.create_namespaced_deployment(ns, deployment_body(name, "example/web:1"))
    wait_for("initial rollout", lambda: rollout_complete(apps, ns, name), timeout=60)
    t_initial = time.monotonic() - t0

    pods = core.list_namespaced_pod(ns, label_selector=f"app={name}").items
    assert len(pods) == 3
    for p in pods:
        assert p.status.phase == "Running"
        assert p.status.pod_ip
        assert p.spec.node_name in kube_cluster.nodes
        assert p.status.container_statuses[0].ready

    # Rolling update to a new image.
    t1 = time.monotonic()
    apps.patch_namespaced_deployment(
        name,
        ns,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "main", "image": "example/web:2"}]}}
            }
        },
    )
    wait_for("rolling update", lambda: rollout_complete(apps, ns, name), timeout=90)
    t_update = time.monotonic() - t1

    def only_new_pods() -> bool:
        ps = core.list_namespaced_pod(ns, label_selector=f"app={name}").items
        return len(ps) == 3 and all(p.spec.containers[0].image == "example/web:2" for p in ps)

    wait_for("old pods gone", only_new_pods, timeout=30)

    needed = {
        "ScalingReplicaSet",
        "SuccessfulCreate",
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Killing",
    }
    got = wait_for(
        "events", lambda: (lambda r: r if needed <= set(r) else None)(reasons(core, ns)), timeout=30
    )
    assert needed <= set(got), got

    evs = core.list_namespaced_event(ns).items
    pulled = [e for e in evs if e.reason == "Pulled"]
    assert pulled and pulled[0].message.startswith('Successfully pulled image "example/web:')
    assert all(e.source.component == "kubelet" for e in evs if e.reason in ("Pulling", "Killing"))
    assert any(e.message == "Started container main" for e in evs)
    assert any(e.message == "Stopping container main" for e in evs)

    # Crash-looping image: BackOff events, rollout never completes, old pods stay.
    apps.patch_namespaced_deployment(
        name,
        ns,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "main", "image": "example/web:3-crash"}]}
                }
            }
        },
    )

    def crash_pod() -> k8s.V1Pod | None:
        for p in core.list_namespaced_pod(ns, label_selector=f"app={name}").items:
            cs = p.status.container_statuses or []
            if (
                p.spec.containers[0].image == "example/web:3-crash"
                and cs
                and cs[0].restart_count >= 2
                and cs[0].state.waiting is not None
            ):
                return p
        return None

    p = wait_for("crash-looping pod", crash_pod, timeout=60)
    assert p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert not p.status.container_statuses[0].ready
    backoff = wait_for(
        "BackOff events",
        lambda: [
            e
            for e in core.list_namespaced_event(ns).items
            if e.reason == "BackOff" and e.involved_object.name == p.metadata.name
        ],
        timeout=30,
    )
    assert backoff[0].message == "Back-off restarting failed container"
    assert backoff[0].type == "Warning"

    time.sleep(3)  # the rollout must stay stuck: nothing will make it progress
    assert not rollout_complete(apps, ns, name)
    d = apps.read_namespaced_deployment(name, ns)
    assert d.status.available_replicas == 3  # maxUnavailable=0 keeps the old pods serving
    assert (d.status.updated_replicas or 0) == 1

    print(
        f"\ninitial rollout {t_initial:.1f}s, rolling update {t_update:.1f}s, "
        f"cluster startup {kube_cluster.startup_seconds:.1f}s"
    )
    core.delete_namespace(ns)


def test_unready_image(kube_cluster: KubeCluster, api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    apps = k8s.AppsV1Api(api)
    ns = f"ur-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    apps.create_namespaced_deployment(ns, deployment_body("svc", "example/svc:v1-unready", 1))
    evs = wait_for(
        "Unhealthy events",
        lambda: [e for e in core.list_namespaced_event(ns).items if e.reason == "Unhealthy"],
        timeout=30,
    )
    assert evs[0].message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    pods = core.list_namespaced_pod(ns).items
    assert pods and pods[0].status.phase == "Running"
    assert not pods[0].status.container_statuses[0].ready
    assert not rollout_complete(apps, ns, "svc")

    # Scale to zero: the emulator kills and force-deletes the pod.
    apps.patch_namespaced_deployment_scale("svc", ns, {"spec": {"replicas": 0}})
    wait_for("pods gone", lambda: not core.list_namespaced_pod(ns).items, timeout=30)
    core.delete_namespace(ns)
