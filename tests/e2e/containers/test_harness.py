"""The container harness itself (tests/support/containers.py over relman_cluster/dockerd.py): a
private dockerd, a loopback registry and the busybox base image, all started by the tests and
all gone when the session ends.

Run alone with ``pytest tests/e2e/containers/test_harness.py -rA -s`` to see the startup figures.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

import pytest
from relman_cluster import dockerd
from support import containers
from support.containers import BaseImage, DockerDaemon, Registry
from support.helpers import wait_for

pytestmark = pytest.mark.xdist_group("containers")

T = TypeVar("T")
TESTS = Path(__file__).resolve().parents[2]  # on sys.path: support.containers


def test_daemon_answers_on_its_own_socket(docker_daemon: DockerDaemon) -> None:
    print(f"\ndockerd (+ its containerd and bridge) ready in {docker_daemon.startup_seconds:.2f}s")
    assert docker_daemon.ping()
    assert docker_daemon.host == f"unix://{docker_daemon.socket_path}"
    assert docker_daemon.socket_path.is_socket()
    assert int((docker_daemon.workdir / "dockerd.pid").read_text()) == docker_daemon.pid
    info = json.loads(docker_daemon.docker("info", "--format", "{{json .}}").stdout)
    assert info["Driver"] == "overlay2"
    assert info["CgroupDriver"] == "cgroupfs"
    assert info["DefaultRuntime"] == "runc"
    assert info["DockerRootDir"] == str(docker_daemon.workdir / "data")
    status, body = docker_daemon.api("GET", "/version")
    assert status == 200 and json.loads(body)["ApiVersion"]


def test_registry_answers_on_loopback(registry: Registry) -> None:
    print(f"\nregistry ready in {registry.startup_seconds:.2f}s")
    host, _, port = registry.addr.partition(":")
    assert host == "127.0.0.1" and port.isdigit()
    with urllib.request.urlopen(f"{registry.url}/v2/", timeout=5) as resp:
        assert resp.status == 200


def test_base_image_runs_a_shell(docker_daemon: DockerDaemon, base_image: BaseImage) -> None:
    print(f"\nbase image built and pushed in {base_image.build_seconds:.2f}s")
    out = docker_daemon.docker("run", "--rm", base_image.ref, "sh", "-c", "echo hi")
    assert out.stdout == "hi\n"
    out = docker_daemon.docker("run", "--rm", "--user", "nobody", base_image.ref, "id", "-un")
    assert out.stdout == "nobody\n"


def test_base_image_digest_is_what_the_registry_serves(
    registry: Registry, base_image: BaseImage
) -> None:
    assert base_image.ref == f"{registry.addr}/relman-test/busybox:1"
    media_type, digest, body = registry.manifest("relman-test/busybox", base_image.digest)
    assert digest == base_image.digest
    assert media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(json.loads(body)["layers"]) == 1
    # Why manifest() sends the Docker v2 types too: asked with only the OCI type, the
    # registry converts this Docker-format manifest and serves another digest.
    _, headers, _ = registry.get(
        "/v2/relman-test/busybox/manifests/1",
        {"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert headers["Docker-Content-Digest"] != base_image.digest


def test_base_image_pulls_back_by_digest(
    docker_daemon: DockerDaemon, base_image: BaseImage
) -> None:
    docker_daemon.docker("rmi", base_image.ref)
    gone = docker_daemon.docker("image", "inspect", base_image.digest_ref, check=False)
    assert gone.returncode != 0, "the image is still held locally"
    t0 = time.monotonic()
    docker_daemon.docker("pull", base_image.digest_ref)
    print(f"\npull by digest: {time.monotonic() - t0:.2f}s")
    out = docker_daemon.docker("run", "--rm", base_image.digest_ref, "echo", "pulled")
    assert out.stdout == "pulled\n"
    docker_daemon.docker("tag", base_image.digest_ref, base_image.ref)  # as the fixture left it


def test_containers_sit_on_the_sessions_bridge_and_publish_on_loopback(
    docker_daemon: DockerDaemon, base_image: BaseImage
) -> None:
    port = containers.free_port()
    name = f"web-{os.getpid()}"
    docker_daemon.docker(
        "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", base_image.ref,
        "httpd", "-f", "-p", "8080", "-h", "/etc",
    )  # fmt: skip
    try:
        ip = docker_daemon.docker(
            "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name
        ).stdout.strip()
        assert ip and ip != str(docker_daemon.bridge.gateway.ip)
        assert ipaddress.ip_address(ip) in docker_daemon.bridge.subnet

        def passwd_via_loopback() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=2) as r:
                return bytes(r.read())

        assert b"nobody:x:65534" in wait_for(
            passwd_via_loopback, timeout=20, what="httpd via 127.0.0.1"
        )
    finally:
        docker_daemon.docker("rm", "-f", name, check=False)


def test_unavailable_means_skip_locally_and_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(dockerd, "_SYSTEM_PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = containers.containers_unavailable_reason()
    assert reason is not None
    assert "not running as root" in reason
    for pkg in ("docker.io", "containerd", "runc", "docker-registry"):
        assert pkg in reason.split("—")[0]
    monkeypatch.delenv("RELMAN_CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not running as root"):
        containers.skip_or_fail(reason)
    monkeypatch.setenv("RELMAN_CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"in CI: .*not running as root"):
        containers.skip_or_fail(reason)


def test_a_daemon_that_fails_to_start_says_why_and_leaves_nothing(
    docker_daemon: DockerDaemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / "dockerd"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'failed to start daemon: boom' >&2\nexit 1\n")
    fake.chmod(0o755)
    real_which = dockerd._which
    monkeypatch.setattr(
        dockerd, "_which", lambda name: str(fake) if name == "dockerd" else real_which(name)
    )
    workdir = tmp_path / "work"
    with pytest.raises(containers.ContainersUnavailable) as err:
        containers.start_docker_daemon(workdir)
    assert "dockerd exited with status 1 before it was ready" in str(err.value)
    assert "failed to start daemon: boom" in str(err.value)  # the log tail
    leftovers = [
        pid for pid in os.listdir("/proc") if pid.isdigit() and str(workdir) in _cmdline(pid)
    ]
    assert leftovers == [], "containerd (or something) of the failed start still runs"
    exec_root = Path(json.loads((workdir / "state.json").read_text())["exec_root"])
    assert not (workdir / "data").exists() and not exec_root.exists()
    links = json.loads(
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    )
    ours = [
        link["ifname"]
        for link in links
        if link.get("ifalias") == f"{containers.BRIDGE_ALIAS}{os.getpid()}"
    ]
    assert ours == [docker_daemon.bridge.name]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


INNER_TEST = """
import json, os, threading

def test_leave_things_running(docker_daemon, registry, base_image):
    cid = docker_daemon.docker("run", "-d", base_image.ref, "sleep", "600").stdout.strip()
    container_pid = docker_daemon.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout
    data = docker_daemon.workdir / "data"
    exec_root = docker_daemon.socket_path.parent
    assert any(data.joinpath("overlay2").iterdir())
    with open(os.environ["INNER_OUT"] + ".tmp", "w") as fh:
        json.dump({
            "pids": [docker_daemon.pid, docker_daemon.containerd.pid, registry.pid,
                     int(container_pid)],
            "bridge": docker_daemon.bridge.name,
            "dirs": [str(data), str(exec_root)],
        }, fh)
    os.replace(os.environ["INNER_OUT"] + ".tmp", os.environ["INNER_OUT"])
    if os.environ.get("INNER_HANG"):
        threading.Event().wait(120)  # until the outer test kills this pytest
"""


def _gone(pid: int) -> bool:
    """No such process, or a zombie (an orphan's exit is reaped by PID 1, when it reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _leftovers(inner: dict[str, Any]) -> list[str]:
    """What the inner session left: live pids, its bridge, its dirs, mounts, processes."""
    left = [f"pid {pid}" for pid in inner["pids"] if not _gone(pid)]
    links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    if inner["bridge"] in {link["ifname"] for link in json.loads(links)}:
        left.append(f"bridge {inner['bridge']}")
    mounts = Path("/proc/self/mountinfo").read_text()
    for d in inner["dirs"]:
        if Path(d).exists():
            left.append(f"dir {d}")
        if d in mounts:
            left.append(f"mounts under {d}")
    for pid in os.listdir("/proc"):
        if pid.isdigit() and any(d in _cmdline(pid) for d in inner["dirs"]) and not _gone(int(pid)):
            left.append(f"process {pid}: {_cmdline(pid)[:100]}")
    return left


@pytest.mark.parametrize("end", ["ends", "is-killed"])
def test_a_session_leaves_nothing_behind(
    docker_daemon: DockerDaemon, tmp_path: Path, end: str
) -> None:
    """A second session (its own daemon, beside this one) leaves nothing running, whether it
    ends or pytest is killed with SIGKILL while a container runs (its guardian cleans up)."""
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out_file = tmp_path / "inner.json"
    env = dict(os.environ, PYTHONPATH=str(TESTS), INNER_OUT=str(out_file))
    if end == "is-killed":
        env["INNER_HANG"] = "1"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "support.containers",
            "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
            "--basetemp", str(tmp_path / "inner-tmp"), str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        if end == "is-killed":
            wait_for(
                lambda: out_file.exists() or proc.poll() is not None,
                timeout=120,
                what="the inner test",
            )
            assert out_file.exists(), proc.communicate()[0]
            proc.kill()
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if end == "ends":
        assert proc.returncode == 0 and "1 passed" in output, output
    inner = json.loads(out_file.read_text())
    assert inner["bridge"] != docker_daemon.bridge.name
    deadline = time.monotonic() + 60  # the guardian works after pytest is gone
    while (left := _leftovers(inner)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"the inner session left behind: {left}"
    assert docker_daemon.ping(), "the other session's teardown touched this session's daemon"
