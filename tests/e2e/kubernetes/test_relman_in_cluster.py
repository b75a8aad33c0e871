"""relman itself running on the real node, from deploy/kubernetes and the images
services/Dockerfile builds, promoting an app onto the same cluster from inside it.

The Release service and a Deployer run as pods of the `relman` namespace: the images are built
on the node's own dockerd (the Debian stand-in for python:3.11-slim, as the compose test
builds them), the three Secrets are created as deploy/kubernetes/README.md says, and the
Deployer talks to the Kubernetes API with in-cluster config and the relman-deployer
ServiceAccount's token only. The CLI, on the host, promotes an app; the Deployer pod's own log
shows it ran the deployment.

What differs from the manifests as shipped, and why: the local cluster has no kube-proxy and
no cluster DNS, so Services route nothing here. The test runs relman's pods with
``hostNetwork`` on loopback ports, points in-cluster config at the API server's loopback
address (``KUBERNETES_SERVICE_HOST``) and the Deployer at the Release service's loopback port,
runs one Deployer (two would want the same host port), keeps the Release service's data on an
emptyDir (no volume provisioner), and uses the host's PostgreSQL (a fresh database). The local
control plane runs without the ServiceAccount admission plugin (cluster/relman_cluster/
controlplane.py), so the test mounts the ServiceAccount's token Secret where that plugin would
(/var/run/secrets/kubernetes.io/serviceaccount). Everything else (images, users, probes,
Secrets, RBAC, ServiceAccount) is the shipped manifests'.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client as k8s
from relman_cluster.build import ensure_binaries
from relman_cluster.dockerd import docker_cli_path
from relman_common import tokens
from support.cli_run import cli_env, run
from support.helpers import REPO, free_port, wait_for
from support.local_images import build_service_images, ensure_images
from support.real_node import RealNodeCluster

pytestmark = pytest.mark.xdist_group("real-node")

MANIFESTS = REPO / "deploy" / "kubernetes"
NAMESPACE = "relman"
TAG = "in-cluster"
DEADLINE = 180.0
APP_MANIFEST = """\
services:
  web:
    build: .
    command:
      - sh
      - -c
      - mkdir -p /w && echo in-cluster > /w/index.html && exec httpd -f -p 5000 -h /w
    port: 5000
    health: {path: /index.html, interval: 1, grace: 1}
    scale: {count: 2}
"""


def kubectl(node: RealNodeCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(ensure_binaries() / "kubectl"), "--kubeconfig", str(node.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE + 30,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def diagnose(node: RealNodeCluster) -> str:
    """The relman pods as kubectl describes them, and their logs (for a failure message)."""
    out = []
    for args in (
        ["describe", "pods"],
        ["logs", "-l", "app.kubernetes.io/part-of=relman", "--all-containers", "--tail=40"],
    ):
        done = subprocess.run(
            [str(ensure_binaries() / "kubectl"), "--kubeconfig", str(node.kubeconfig),
             "-n", NAMESPACE, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        out.append(done.stdout[-6000:] + done.stderr[-2000:])
    return "\n".join(out)


def set_env(container: dict[str, Any], **values: str) -> None:
    """Set (or add) plain env values of ``container``."""
    env = [e for e in container.get("env", []) if e["name"] not in values]
    env += [{"name": name, "value": value} for name, value in values.items()]
    container["env"] = env


SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def local_manifests(
    files: tuple[str, ...],
    release_port: int = 0,
    deployer_port: int = 0,
    api_host: str = "",
    api_port: str = "",
    token_secret: str = "",
) -> str:
    """The shipped manifests, changed only as the module docstring says."""
    docs: list[dict[str, Any]] = []
    for name in files:
        docs += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    out = []
    for doc in docs:
        if doc["kind"] == "PersistentVolumeClaim":
            continue
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["namespace"] = NAMESPACE
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
            (container,) = spec["containers"]
            container["image"] = f"{container['image']}:{TAG}"
            container["imagePullPolicy"] = "Never"  # built on the node's own dockerd
            release = f"127.0.0.1:{release_port}"
            if doc["metadata"]["name"] == "relman-release":
                set_env(container, RELMAN_RELEASE_ADDR=release)
                for volume in spec["volumes"]:
                    if volume["name"] == "data":
                        volume.pop("persistentVolumeClaim")
                        volume["emptyDir"] = {}
            else:
                doc["spec"]["replicas"] = 1
                spec["volumes"].append({"name": "sa-token", "secret": {"secretName": token_secret}})
                container["volumeMounts"].append(
                    {"name": "sa-token", "mountPath": SA_MOUNT, "readOnly": True}
                )
                set_env(
                    container,
                    RELMAN_DEPLOYER_ADDR=f"127.0.0.1:{deployer_port}",
                    RELMAN_RELEASE_ADDR=release,
                    KUBERNETES_SERVICE_HOST=api_host,
                    KUBERNETES_SERVICE_PORT=api_port,
                )
        out.append(doc)
    return yaml.safe_dump_all(out)


@pytest.fixture
def relman_in_cluster(
    real_node: RealNodeCluster, pg_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    docker_cli = docker_cli_path()
    assert docker_cli, "the docker CLI is missing"
    env = {**os.environ, "DOCKER_HOST": real_node.docker_host}
    ensure_images([docker_cli], env)
    build_service_images([docker_cli], env, REPO, tag=TAG)

    admin, deployer = tokens.generate(), tokens.generate()
    kubectl(real_node, "create", "namespace", NAMESPACE)
    kubectl(real_node, "-n", NAMESPACE, "create", "secret", "generic", "relman-database",
            f"--from-literal=url={pg_url}")  # fmt: skip
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    kubectl(real_node, "-n", NAMESPACE, "create", "secret", "generic", "relman-secret-key",
            f"--from-literal=secret.key={key}")  # fmt: skip
    kubectl(real_node, "-n", NAMESPACE, "create", "secret", "generic", "relman-tokens",
            f"--from-literal=admin.token={admin}",
            f"--from-literal=deployer.token={deployer}")  # fmt: skip

    (tmp_path / "rbac.yaml").write_text(local_manifests(("namespace.yaml", "rbac.yaml")))
    kubectl(real_node, "apply", "-f", str(tmp_path / "rbac.yaml"))
    try:
        token_secret: str = wait_for(
            lambda: kubectl(
                real_node,
                "-n",
                NAMESPACE,
                "get",
                "serviceaccount",
                "relman-deployer",
                "-o",
                "jsonpath={.secrets[0].name}",
            ),
            timeout=60,
            what="the relman-deployer ServiceAccount's token Secret",
        )
        api = urlsplit(real_node.cluster.server)
        release_port, deployer_port = free_port(), free_port()
        services = local_manifests(
            ("release.yaml", "deployer.yaml"),
            release_port,
            deployer_port,
            api.hostname or "",
            str(api.port),
            token_secret,
        )
        (tmp_path / "relman.yaml").write_text(services)
        kubectl(real_node, "apply", "-f", str(tmp_path / "relman.yaml"))
        for name in ("relman-release", "relman-deployer"):
            try:
                kubectl(real_node, "-n", NAMESPACE, "rollout", "status", f"deployment/{name}",
                        f"--timeout={int(DEADLINE)}s")  # fmt: skip
            except (AssertionError, subprocess.TimeoutExpired) as err:
                raise AssertionError(f"{name} never became ready:\n{diagnose(real_node)}") from err
        yield cli_env(
            {
                "RELMAN_RELEASE_ADDR": f"127.0.0.1:{release_port}",
                "RELMAN_DEPLOYER_ADDR": f"127.0.0.1:{deployer_port}",
                "RELMAN_TOKEN": admin,
            },
            tmp_path,
        )
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl(real_node, "delete", kind, "relman-deployer", "--ignore-not-found")
        kubectl(real_node, "delete", "namespace", NAMESPACE, "--wait=false")


def test_relman_runs_from_its_manifests_and_promotes_onto_its_own_cluster(
    relman_in_cluster: dict[str, str], real_node: RealNodeCluster, tmp_path: Path
) -> None:
    env = relman_in_cluster
    app = "inside"
    assert run(["apps", "create", app], env).code == 0
    manifest = tmp_path / "convox.yml"
    manifest.write_text(APP_MANIFEST)
    imported = run(
        ["builds", "import", "--manifest", str(manifest), "--image",
         f"web={real_node.base_image}", "-a", app],
        env,
    )  # fmt: skip
    assert imported.code == 0, imported
    release = imported.lines[-1].removeprefix("Release: ")

    promoted = run(["releases", "promote", release, "-a", app], env, timeout=DEADLINE)
    assert (promoted.code, promoted.lines[-1]) == (0, "OK"), promoted
    deployment = re.search(r"D[A-Z]{10}", run(["deployments", "-a", app], env).out)
    assert deployment, "no deployment listed"

    # The app runs on the node, and it was the Deployer pod that deployed it.
    client = real_node.new_api_client()
    try:
        web = k8s.AppsV1Api(client).read_namespaced_deployment("web", f"relman-{app}")
        assert web.status.available_replicas == 2
        logs = wait_for(
            lambda: [
                log
                for pod in k8s.CoreV1Api(client)
                .list_namespaced_pod(
                    NAMESPACE, label_selector="app.kubernetes.io/name=relman-deployer"
                )
                .items
                if deployment.group(0)
                in (
                    log := k8s.CoreV1Api(client).read_namespaced_pod_log(
                        pod.metadata.name, NAMESPACE
                    )
                )
            ],
            timeout=30,
            what="the Deployer pod's log naming the deployment",
        )
        assert logs
        k8s.CoreV1Api(client).delete_namespace(f"relman-{app}")
    finally:
        client.close()
