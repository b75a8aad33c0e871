"""The local cluster's real node (relman_cluster.node, the ``real_node`` fixture): pods run as
containers on the node's private dockerd, pulled from its loopback registry, and the failures,
events and logs are the real kubelet's.

Run alone with ``pytest tests/e2e/kubernetes/test_real_node.py -rA -s`` to see the figures
(startup phases, pod Ready times, memory).
"""

from __future__ import annotations

import ipaddress
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from support.helpers import wait_for
from support.real_node import RealNodeCluster

pytestmark = pytest.mark.xdist_group("real-node")

T = TypeVar("T")
PAGE = "served by busybox httpd on a real node\n"


@pytest.fixture(scope="module")
def api(real_node: RealNodeCluster) -> Iterator[Any]:
    client = real_node.new_api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    name = "rn-" + uuid.uuid4().hex[:8]
    core = k8s.CoreV1Api(api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def web_image(real_node: RealNodeCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An httpd image built FROM the local busybox base and pushed to the node's registry,
    then removed from the node's image store (so the first pod pulls it cold)."""
    context = tmp_path_factory.mktemp("web-image")
    (context / "index.html").write_text(PAGE)
    (context / "Dockerfile").write_text(
        f"FROM {real_node.base_image}\n"
        "COPY index.html /www/index.html\n"
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
    )
    ref = f"{real_node.registry}/relman-e2e/web:{uuid.uuid4().hex[:8]}"
    real_node.docker.docker("build", "-t", ref, str(context))
    real_node.docker.docker("push", ref)
    real_node.docker.docker("rmi", ref)
    return ref


def web_deployment(name: str, image: str, replicas: int = 2) -> k8s.V1Deployment:
    labels = {"app": name}
    container = k8s.V1Container(
        name="web",
        image=image,
        image_pull_policy="Always",
        ports=[k8s.V1ContainerPort(container_port=8080)],
        readiness_probe=k8s.V1Probe(
            http_get=k8s.V1HTTPGetAction(path="/index.html", port=8080),
            period_seconds=1,
        ),
    )
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
            ),
        ),
    )


def ready_pods(core: Any, namespace: str, selector: str, count: int) -> list[Any] | None:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    ready = [
        p
        for p in pods
        if p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    return ready if len(ready) == count else None


def waiting_reason(core: Any, namespace: str, pod: str) -> str | None:
    status = core.read_namespaced_pod(pod, namespace).status
    for cs in status.container_statuses or []:
        if cs.state.waiting is not None:
            return str(cs.state.waiting.reason)
    return None


def event_reasons(core: Any, namespace: str, pod: str) -> set[str]:
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}"
    ).items
    return {e.reason for e in events if e.source is not None and e.source.component == "kubelet"}


def bare_pod(name: str, image: str, command: list[str]) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1PodSpec(
            containers=[k8s.V1Container(name="main", image=image, command=command)],
            termination_grace_period_seconds=1,
        ),
    )


def test_the_node_is_a_ready_kubelet_on_this_runs_bridge(
    real_node: RealNodeCluster, api: Any
) -> None:
    print(f"\ncluster with a real node ready in {real_node.startup_seconds:.1f}s:")
    for phase, seconds in real_node.timings.items():
        print(f"  {phase:<24} {seconds:6.1f}s")
    node = k8s.CoreV1Api(api).read_node(real_node.node_name)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.node_info.kubelet_version == "v1.20.2"
    assert node.status.node_info.container_runtime_version.startswith("docker://")
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    assert internal and ipaddress.ip_address(internal[0]) in real_node.pod_network
    assert set(real_node.settings) == {"KUBECONFIG", "RELMAN_REGISTRY", "DOCKER_HOST"}
    assert real_node.registry.startswith("127.0.0.1:")


def test_a_deployment_runs_real_containers_that_serve_http(
    real_node: RealNodeCluster, api: Any, namespace: str, web_image: str
) -> None:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    t0 = time.monotonic()
    apps.create_namespaced_deployment(namespace, web_deployment("web", web_image))
    pods = wait_for(
        lambda: ready_pods(core, namespace, "app=web", 2), timeout=120, what="2 Ready web pods"
    )
    cold = time.monotonic() - t0
    for pod in pods:
        ip = ipaddress.ip_address(pod.status.pod_ip)
        assert ip in real_node.pod_network, f"{ip} is not on this run's bridge"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{ip}:8080/index.html", timeout=5) as resp:
            assert resp.read().decode() == PAGE
    reasons = wait_for(
        lambda: (r := event_reasons(core, namespace, pods[0].metadata.name))
        >= {"Pulling", "Pulled", "Created", "Started"}
        and r,
        timeout=30,
        what="the kubelet's Pulling/Pulled/Created/Started events",
    )
    assert {"Pulling", "Pulled", "Created", "Started"} <= reasons

    t0 = time.monotonic()
    apps.create_namespaced_deployment(namespace, web_deployment("web2", web_image))
    wait_for(
        lambda: ready_pods(core, namespace, "app=web2", 2), timeout=120, what="2 Ready web2 pods"
    )
    warm = time.monotonic() - t0
    print(
        f"\nDeployment of 2 -> both Ready: {cold:.1f}s (cold pull), {warm:.1f}s (warm); "
        f"RSS of control plane + node + pods: {real_node.rss_bytes() / 2**20:.0f} MiB"
    )


def test_a_missing_tag_is_err_image_pull_then_image_pull_back_off(
    real_node: RealNodeCluster, api: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(api)
    image = f"{real_node.registry}/relman-e2e/nothing-here:missing"
    core.create_namespaced_pod(namespace, bare_pod("missing", image, ["sh"]))
    seen: set[str] = set()

    def both() -> bool:
        reason = waiting_reason(core, namespace, "missing")
        if reason:
            seen.add(reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    wait_for(both, timeout=90, what=f"ErrImagePull then ImagePullBackOff (seen: {seen})")
    assert "Failed" in event_reasons(core, namespace, "missing")


def test_a_command_that_exits_1_crash_loops(
    real_node: RealNodeCluster, api: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(api)
    pod = bare_pod("crash", real_node.base_image, ["sh", "-c", "echo bye; exit 1"])
    core.create_namespaced_pod(namespace, pod)
    wait_for(
        lambda: waiting_reason(core, namespace, "crash") == "CrashLoopBackOff",
        timeout=90,
        what="CrashLoopBackOff",
    )
    status = core.read_namespaced_pod("crash", namespace).status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 1
    assert "BackOff" in event_reasons(core, namespace, "crash")


def test_a_job_completes_and_its_log_is_served(
    real_node: RealNodeCluster, api: Any, namespace: str
) -> None:
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="hello"),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        k8s.V1Container(
                            name="hello",
                            image=real_node.base_image,
                            command=["sh", "-c", 'echo "hello from $(hostname)"; echo done'],
                        )
                    ],
                )
            ),
        ),
    )
    t0 = time.monotonic()
    batch.create_namespaced_job(namespace, job)
    wait_for(
        lambda: batch.read_namespaced_job_status("hello", namespace).status.succeeded == 1,
        timeout=90,
        what="the Job to complete",
    )
    print(f"\nJob complete in {time.monotonic() - t0:.1f}s")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items[0]
    text = core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert text == f"hello from {pod.metadata.name}\ndone\n"
