"""deploy/kubernetes, relman's own manifests, against the real local control plane.

The whole kustomization passes a server-side dry run (schema, RBAC objects, references). Then
the Deployer's ServiceAccount and ClusterRole are created for real and a Deployer whose only
credential is that ServiceAccount's token promotes an app with a release command and rolls a
crashing release back: the role is enough for everything the backend does, and it is not
cluster-admin (it may not read nodes, grant roles or delete namespaces).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from kubernetes import client as k8s
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, types_pb2
from relman_cluster.build import ensure_binaries
from relman_common import tokens
from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.release_client import CHANNEL_OPTIONS
from support.deployer import ACTOR, read_stream
from support.deployer_stack import Stack
from support.helpers import REPO, aio_token_interceptors, free_port, wait_for
from support.k8s_cluster import KubeCluster

pytestmark = pytest.mark.xdist_group("kube")

MANIFESTS = REPO / "deploy" / "kubernetes"
DEADLINE = 120.0
NAMESPACE = "relman"


def kubectl(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_binaries() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_manifests_pass_a_server_side_dry_run(kube_cluster: KubeCluster) -> None:
    # The namespace exists first, as the install's Secrets need it (deploy/kubernetes/README.md).
    namespace = kubectl(kube_cluster, "apply", "-f", str(MANIFESTS / "namespace.yaml"))
    assert namespace.returncode == 0, namespace.stderr
    done = kubectl(kube_cluster, "apply", "-k", str(MANIFESTS), "--dry-run=server")
    assert done.returncode == 0, done.stderr
    created = sorted(line.split()[0] for line in done.stdout.splitlines())
    assert created == sorted(
        [
            "clusterrole.rbac.authorization.k8s.io/relman-deployer",
            "clusterrolebinding.rbac.authorization.k8s.io/relman-deployer",
            "deployment.apps/relman-deployer",
            "deployment.apps/relman-release",
            "namespace/relman",
            "persistentvolumeclaim/relman-release-data",
            "service/relman-deployer",
            "service/relman-release",
            "serviceaccount/relman-deployer",
        ]
    ), done.stdout


def service_account_kubeconfig(cluster: KubeCluster, path: Path) -> Path:
    """A kubeconfig whose only credential is the relman-deployer ServiceAccount's token."""
    api = cluster.new_api_client()
    try:
        core = k8s.CoreV1Api(api)

        def token_secret() -> Any:
            account = core.read_namespaced_service_account("relman-deployer", NAMESPACE)
            return account.secrets[0].name if account.secrets else None

        name: str = wait_for(token_secret, timeout=DEADLINE, what="its token Secret")
        secret = core.read_namespaced_secret(name, NAMESPACE)
    finally:
        api.close()
    token = base64.b64decode(secret.data["token"]).decode()
    ca = secret.data["ca.crt"]  # base64 already, as a kubeconfig wants it
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": cluster.server, "certificate-authority-data": ca},
            }
        ],
        "users": [{"name": "relman-deployer", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "relman-deployer"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
async def deployer_as_service_account(
    kube_cluster: KubeCluster, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Stack, deployer_pb2_grpc.DeployerServiceStub, Path]]:
    for name in ("namespace.yaml", "rbac.yaml"):
        done = kubectl(kube_cluster, "apply", "-n", NAMESPACE, "-f", str(MANIFESTS / name))
        assert done.returncode == 0, done.stderr
    kubeconfig = service_account_kubeconfig(kube_cluster, tmp_path / "sa.kubeconfig")
    stack = Stack(sqlite_url, tmp_path / "release")
    await stack.start_release()
    try:
        addr = f"127.0.0.1:{free_port()}"
        deployer = DeployerService(
            addr,
            Settings(
                database_url=sqlite_url,
                release_addr=stack.release_addr,
                backend="kubernetes",
                backend_options={"kubeconfig": str(kubeconfig)},
                lease_ttl=5.0,
                auth=True,
                token_file=stack.data_dir / tokens.DEPLOYER_TOKEN_FILE,
            ),
        )
        await deployer.start()
        stack.deployers.append(deployer)
        channel = grpc.aio.insecure_channel(
            addr, options=CHANNEL_OPTIONS, interceptors=aio_token_interceptors(stack.token_for)
        )
        stack._channels.append(channel)
        yield stack, deployer_pb2_grpc.DeployerServiceStub(channel), kubeconfig
    finally:
        await stack.close()


MANIFEST = """\
release:
  command: bin/migrate
services:
  web:
    build: .
    port: 5000
    scale: {count: 2}
"""


async def promote(
    stack: Stack, deployer: deployer_pb2_grpc.DeployerServiceStub, app: str, tag: str
) -> Any:
    await stack.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app, manifest=MANIFEST, images={"web": f"registry.example/{app}:web.{tag}"}
        ),
        metadata=ACTOR,
    )
    stream = deployer.Promote(deployer_pb2.PromoteRequest(app=app), metadata=ACTOR)
    return await asyncio.wait_for(read_stream(stream), DEADLINE)


async def test_a_deployer_with_only_the_service_accounts_role_promotes_and_rolls_back(
    deployer_as_service_account: tuple[Stack, deployer_pb2_grpc.DeployerServiceStub, Path],
    kube_cluster: KubeCluster,
    app_name: str,
) -> None:
    stack, deployer, kubeconfig = deployer_as_service_account
    await stack.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)

    got = await promote(stack, deployer, app_name, "good")
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages
    assert "Running release command: bin/migrate" in got.messages
    assert any(m.startswith("Scaled up replica set web-") for m in got.messages)

    got = await promote(stack, deployer, app_name, "crash")
    assert got.last is not None
    assert got.last.outcome == types_pb2.OUTCOME_ROLLED_BACK, (got.last.reason, got.messages)

    # What the role does not allow.
    config = ["--kubeconfig", str(kubeconfig)]
    kubectl_bin = str(ensure_binaries() / "kubectl")
    for verb in (
        ["get", "nodes"],
        ["create", "clusterrolebinding", "x", "--clusterrole=cluster-admin", "--user=x"],
        ["delete", "namespace", f"relman-{app_name}"],
    ):
        done = await asyncio.to_thread(
            subprocess.run,
            [kubectl_bin, *config, *verb],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0 and "forbidden" in done.stderr.lower(), (verb, done)
