"""relman end to end on a real Kubernetes node: the test that proves relman works.

Both services run as real processes (SQLite). The Release service builds with the daemonless
``local`` builder and pushes to the node's registry, so the kubelet really pulls what relman
built; a second Release service builds with the ``docker`` builder on the node's own dockerd
(``DOCKER_HOST``, as ``make cluster`` prints it), ``RUN`` included. The Deployer uses the
``kubernetes`` backend against the local control plane, whose node is a real kubelet running
the images through dockershim. The installed ``relman`` command is run in a source directory
as a user would. What is checked is what really happened on the node: pods Ready through
the real readiness probe, HTTP answers from the pods (on the bridge this run created), the
ReplicaSets, the real kubelet's events in the CLI's output, and its container logs.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from support.cli_run import Done, cli_env, run
from support.helpers import ServiceProcess, free_port, wait_for
from support.real_node import RealNodeCluster as RealNode

pytestmark = pytest.mark.xdist_group("real-node")

DEADLINE = 180.0
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
EVENT = re.compile(rf"{RFC3339} (system/k8s/\S+) (\S.*)")
RELEASE_ID = r"R[A-Z]{10}"
DEPLOYMENT_ID = r"D[A-Z]{10}"
NAME_LABEL = "app.kubernetes.io/name"

# The app: busybox httpd on port 5000 serving what its start script wrote: the code's version
# (a file in the image) and the env's GREETING (from the release's Secret).
DOCKERFILE = """\
FROM {base}
COPY . /app
CMD ["/app/bin/web"]
"""
DOCKERFILE_WITH_RUN = """\
FROM {base}
COPY . /app
RUN echo "built by docker" > /app/BUILT && test -x /app/bin/web
CMD ["/app/bin/web"]
"""
WEB = """\
#!/bin/sh
mkdir -p /tmp/www
echo "code $(cat /app/VERSION) env $GREETING" > /tmp/www/index.html
echo ok > /tmp/www/health
echo "web $(cat /app/VERSION) serving on 5000"
exec httpd -f -v -p 5000 -h /tmp/www
"""
MANIFEST = """\
environment: [GREETING]
{release}services:
  web:
    build: .
    command: {command}
    port: 5000
    health: {{path: {health}, interval: 1, grace: 1}}
    scale: {{count: 2}}
    deployment: {{minimum: 50, maximum: 150}}
    termination: {{grace: 2}}
"""


@dataclass
class Stack:
    node: RealNode
    release: ServiceProcess
    deployer: ServiceProcess
    env: dict[str, str]
    root: Path
    base: str
    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    builder: str

    def relman(self, *args: str, cwd: Path | None = None, timeout: float = DEADLINE) -> Done:
        return run(list(args), self.env, cwd=cwd or self.root, timeout=timeout)

    def source(
        self,
        app: str,
        version: str,
        *,
        command: str = "/app/bin/web",
        release: str = "",
        health: str = "/health",
    ) -> Path:
        """The app's source directory at ``version`` (rewritten in place, like a checkout)."""
        root = self.root / app
        (root / "bin").mkdir(parents=True, exist_ok=True)
        dockerfile = DOCKERFILE_WITH_RUN if self.builder == "docker" else DOCKERFILE
        (root / "Dockerfile").write_text(dockerfile.format(base=self.base))
        (root / "VERSION").write_text(version + "\n")
        (root / "bin/web").write_text(WEB)
        (root / "bin/web").chmod(0o755)
        block = f"release:\n  command: {release}\n  timeout: 120\n" if release else ""
        manifest = MANIFEST.format(release=block, command=command, health=health)
        (root / "convox.yml").write_text(manifest)
        return root


def start_stack(node: RealNode, tmp: Path, builder: str) -> Stack:
    """The Release service (building with ``builder``) and a Deployer on the node's cluster."""
    release_addr = f"127.0.0.1:{free_port()}"
    deployer_addr = f"127.0.0.1:{free_port()}"
    build_env = {"RELMAN_BUILDER": builder, "RELMAN_REGISTRY": node.registry}
    if builder == "docker":
        build_env["DOCKER_HOST"] = node.docker_host
    release = ServiceProcess(
        "relman_release",
        ["--addr", release_addr, "--data-dir", str(tmp / "release")],
        env={"RELMAN_AUTH": "on", **build_env},
        log_path=tmp / "release.log",
    ).start(release_addr)
    deployer = ServiceProcess(
        "relman_deployer",
        [
            "--addr", deployer_addr,
            "--release-addr", release_addr,
            "--data-dir", str(tmp / "deployer"),
            "--token-file", str(tmp / "release" / "deployer.token"),
        ],
        env={
            "RELMAN_AUTH": "on",
            "RELMAN_BACKEND": "kubernetes",
            "RELMAN_KUBECONFIG": str(node.kubeconfig),
            "RELMAN_CRASHLOOP_THRESHOLD": "2",
        },
        log_path=tmp / "deployer.log",
    )  # fmt: skip
    try:
        deployer.start(deployer_addr)
    except BaseException:
        release.stop()
        raise
    env = cli_env(
        {
            "RELMAN_RELEASE_ADDR": release_addr,
            "RELMAN_DEPLOYER_ADDR": deployer_addr,
            "RELMAN_DATA_DIR": str(tmp / "release"),
        },
        tmp,
    )
    api = node.new_api_client()
    return Stack(
        node,
        release,
        deployer,
        env,
        tmp,
        node.base_image,  # busybox with sh and httpd, in the node's registry
        k8s.CoreV1Api(api),
        k8s.AppsV1Api(api),
        builder,
    )


def stop_stack(stack: Stack) -> None:
    stack.deployer.stop()
    stack.release.stop()
    stack.core.api_client.close()


@pytest.fixture(scope="module")
def stack(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """relman building with the local builder: the kubelet pulls the images from the registry."""
    s = start_stack(real_node, tmp_path_factory.mktemp("relman-local-builder"), "local")
    try:
        yield s
    finally:
        stop_stack(s)


@pytest.fixture(scope="module")
def docker_stack(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """relman building with the docker builder on the node's own dockerd."""
    s = start_stack(real_node, tmp_path_factory.mktemp("relman-docker-builder"), "docker")
    try:
        yield s
    finally:
        stop_stack(s)


# --------------------------------------------------------------------------------------------
# What the node says
# --------------------------------------------------------------------------------------------


def events(done: Done) -> list[tuple[str, str]]:
    """``(source, message)`` of every event line the CLI printed."""
    return [(m.group(1), m.group(2)) for m in map(EVENT.fullmatch, done.lines) if m]


# The kubelet's event messages, by the reason it gives them (kubelet/events and its callers).
KUBELET_MESSAGES = {
    "Pulling": re.compile(r'Pulling image "'),
    "Pulled": re.compile(r'Successfully pulled image "|Container image ".*" already present'),
    "Created": re.compile(r"Created container "),
    "Started": re.compile(r"Started container "),
    "Killing": re.compile(r"Stopping container "),
    "Unhealthy": re.compile(r"Readiness probe failed: "),
    "BackOff": re.compile(r"Back-off restarting failed container|Back-off pulling image"),
}


def kubelet_reasons(done: Done) -> set[str]:
    """The kubelet's event reasons whose messages the CLI printed, from pods' sources."""
    pod_messages = [m for source, m in events(done) if re.search(r"-[a-z0-9]{5}$", source)]
    return {
        reason
        for reason, pattern in KUBELET_MESSAGES.items()
        if any(pattern.match(m) for m in pod_messages)
    }


def web_pods(stack: Stack, app: str) -> list[Any]:
    pods = stack.core.list_namespaced_pod(f"relman-{app}", label_selector=f"{NAME_LABEL}=web")
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


# Straight to the pod: never through a proxy the environment may name.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(stack: Stack, ip: str, path: str = "/") -> str:
    # Only pods on the bridge this run made, never any other address.
    assert ipaddress.ip_address(ip) in stack.node.pod_network, ip
    with DIRECT.open(f"http://{ip}:5000{path}", timeout=5) as response:
        return str(response.read().decode().strip())


def serving(stack: Stack, app: str, expected: str, pods: int = 2) -> list[str]:
    """Wait until exactly ``pods`` pods of web exist, all Ready and answering ``expected``
    (each asked over HTTP on its own address); their answers."""
    seen: list[str] = []

    def check() -> bool:
        nonlocal seen
        current = web_pods(stack, app)
        if len(current) != pods or not all(ready(p) for p in current):
            return False
        seen = [get(stack, p.status.pod_ip) for p in current]
        return all(answer == expected for answer in seen)

    wait_for(check, timeout=DEADLINE, what=f"{pods} pods of {app} answering {expected!r}")
    return seen


def replica_sets(stack: Stack, app: str) -> dict[str, tuple[int, str]]:
    """Each ReplicaSet of web: (spec.replicas, the image of its pods)."""
    found = stack.apps.list_namespaced_replica_set(
        f"relman-{app}", label_selector=f"{NAME_LABEL}=web"
    )
    return {
        rs.metadata.name: (rs.spec.replicas or 0, rs.spec.template.spec.containers[0].image)
        for rs in found.items
    }


def deployed(done: Done) -> str:
    """The release a successful ``relman deploy`` made and promoted."""
    assert (done.code, done.err) == (0, ""), done
    release = re.search(rf"^Release: ({RELEASE_ID})$", done.out, re.M)
    assert release, done.out
    assert done.lines[-1] == "OK", done.lines[-5:]
    return release.group(1)


def failed_deployment(done: Done) -> tuple[str, str]:
    """(deployment id, reason) of a promote that failed."""
    assert done.code == 1, done
    failure = re.search(
        rf"ERROR: deployment ({DEPLOYMENT_ID}) (?:failed|rolled back)[^:]*: (.*)", done.err
    )
    assert failure, done.err
    return failure.group(1), failure.group(2)


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_deploy_update_and_rollback_of_an_http_app_built_from_source(stack: Stack) -> None:
    app = "hello"
    assert stack.relman("apps", "create", app).code == 0
    assert stack.relman("env", "set", "GREETING=one", "-a", app).code == 0

    t0 = time.monotonic()
    first = stack.relman("deploy", "-a", app, cwd=stack.source(app, "v1"))
    v1 = deployed(first)
    first_seconds = time.monotonic() - t0
    # The real kubelet's words, passed through as events: it pulled what relman pushed.
    assert {"Pulling", "Pulled", "Created", "Started"} <= kubelet_reasons(first), first.lines
    assert serving(stack, app, "code v1 env one") == ["code v1 env one"] * 2

    # Version 2, with a new env: every pod serves it, the old ReplicaSet is at 0.
    assert stack.relman("env", "set", "GREETING=two", "-a", app).code == 0
    second = stack.relman("deploy", "-a", app, cwd=stack.source(app, "v2"))
    v2 = deployed(second)
    assert "Killing" in kubelet_reasons(second), second.lines
    assert serving(stack, app, "code v2 env two") == ["code v2 env two"] * 2
    sets = replica_sets(stack, app)
    assert sorted(replicas for replicas, _ in sets.values()) == [0, 2], sets

    # Rollback: the code and the env of v1 (from v1's own Secret) again.
    back = stack.relman("releases", "rollback", v1, "-a", app)
    assert back.code == 0, back
    assert serving(stack, app, "code v1 env one") == ["code v1 env one"] * 2
    listing = stack.relman("releases", "-a", app).lines
    active = [line.split()[0] for line in listing[1:] if line.split()[1] == "active"]
    assert len(active) == 1 and active[0] not in (v1, v2)  # rollback promotes a copy of v1
    print(f"\nfirst deploy from source to 2 pods serving: {first_seconds:.1f} s")


def test_a_release_whose_image_tag_does_not_exist_rolls_back_fast_naming_the_pull(
    stack: Stack,
) -> None:
    app = "nopull"
    assert stack.relman("apps", "create", app).code == 0
    assert stack.relman("env", "set", "GREETING=ok", "-a", app).code == 0
    good = deployed(stack.relman("deploy", "-a", app, cwd=stack.source(app, "v1")))
    manifest = stack.source(app, "v1") / "convox.yml"
    missing = f"{stack.node.registry}/{app}:no-such-tag"
    imported = stack.relman(
        "builds", "import", "--manifest", str(manifest), "--image", f"web={missing}", "-a", app
    )
    assert imported.code == 0, imported
    bad = imported.lines[-1].removeprefix("Release: ")

    t0 = time.monotonic()
    promote = stack.relman("releases", "promote", bad, "-a", app)
    seconds = time.monotonic() - t0
    _, reason = failed_deployment(promote)
    assert "ImagePullBackOff" in reason or "ErrImagePull" in reason, reason
    assert missing in reason, reason
    assert seconds < DEADLINE  # far under the 600 s progress deadline; the figure is printed
    assert serving(stack, app, "code v1 env ok") == ["code v1 env ok"] * 2
    listing = stack.relman("releases", "-a", app).lines
    statuses = {line.split()[0]: line.split()[1] for line in listing[1:]}
    assert statuses[good] == "active"
    print(f"\nmissing tag: promote ended {seconds:.1f} s after it started: {reason}")


def test_a_release_command_runs_as_a_real_job_and_its_output_is_in_the_events(
    docker_stack: Stack,
) -> None:
    """Built by the docker builder (with RUN) on the node's dockerd; the Job runs that image."""
    stack = docker_stack
    app = "migrate"
    assert stack.relman("apps", "create", app).code == 0
    assert stack.relman("env", "set", "GREETING=hi", "-a", app).code == 0
    source = stack.source(
        app, "v1", release='["sh", "-c", "echo migrating $(cat /app/VERSION) for $GREETING"]'
    )
    done = stack.relman("deploy", "-a", app, cwd=source)
    deployed(done)
    shown = events(done)
    jobs = [s for s, m in shown if m == "migrating v1 for hi"]
    assert len(jobs) == 1 and re.fullmatch(r"system/k8s/web-release-d[a-z]{10}", jobs[0]), shown
    announced = [i for i, (_, m) in enumerate(shown) if m.startswith("Running release command")]
    scaled = [i for i, (_, m) in enumerate(shown) if m.startswith("Scaled up replica set web-")]
    assert announced and scaled and announced[0] < min(scaled)
    assert serving(stack, app, "code v1 env hi") == ["code v1 env hi"] * 2
    # The Job and its pod are gone afterwards.
    jobs_left = k8s.BatchV1Api(stack.core.api_client).list_namespaced_job(f"relman-{app}")
    assert jobs_left.items == []


def test_a_crashing_command_crash_loops_is_rolled_back_and_its_log_is_in_deployments_info(
    stack: Stack,
) -> None:
    app = "crashy"
    assert stack.relman("apps", "create", app).code == 0
    assert stack.relman("env", "set", "GREETING=fine", "-a", app).code == 0
    deployed(stack.relman("deploy", "-a", app, cwd=stack.source(app, "v1")))
    crash = '["sh", "-c", "echo web $(cat /app/VERSION) crashing on purpose; exit 3"]'
    done = stack.relman("deploy", "-a", app, cwd=stack.source(app, "v3", command=crash))
    deployment, reason = failed_deployment(done)
    # The kubelet restarts it with a back-off (CrashLoopBackOff) until relman's threshold (2).
    assert re.match(r"pods of web crash-looping \(restarted \d+ times\)", reason), reason
    assert "(code 3)" in reason, reason
    assert "BackOff" in kubelet_reasons(done), done.lines
    assert serving(stack, app, "code v1 env fine") == ["code v1 env fine"] * 2

    info = stack.relman("deployments", "info", deployment, "-a", app)
    assert info.code == 0, info
    assert any("web v3 crashing on purpose" in line for line in info.lines), info.lines
    as_json = json.loads(
        stack.relman("deployments", "info", deployment, "-a", app, "-o", "json").out
    )
    assert "web v3 crashing on purpose" in json.dumps(as_json)


def test_a_release_that_never_gets_ready_rolls_back_at_its_deadline_with_unhealthy_events(
    stack: Stack,
) -> None:
    app = "unready"
    assert stack.relman("apps", "create", app).code == 0
    assert stack.relman("env", "set", "GREETING=ok", "-a", app).code == 0
    good = deployed(stack.relman("deploy", "-a", app, cwd=stack.source(app, "v1")))
    built = stack.relman("build", "-a", app, cwd=stack.source(app, "v2", health="/nowhere"))
    assert built.code == 0, built
    bad = built.lines[-1].removeprefix("Release: ")
    done = stack.relman("releases", "promote", bad, "-a", app, "--timeout", "15")
    failed_deployment(done)
    assert "Unhealthy" in kubelet_reasons(done), done.lines
    assert serving(stack, app, "code v1 env ok") == ["code v1 env ok"] * 2
    statuses = {
        line.split()[0]: line.split()[1] for line in stack.relman("releases", "-a", app).lines[1:]
    }
    assert statuses[good] == "active"
