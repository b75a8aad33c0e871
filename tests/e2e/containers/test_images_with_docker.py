"""Both builders against a real dockerd and a real registry: the image is pulled back by its
digest and run, and says what its files say.

They take the session fixtures of ``tests/support/containers.py``: a private dockerd
(``docker_daemon``), a loopback registry (``registry``) and a busybox base pushed to it
(``base_image``); they skip where Docker cannot run, and fail so in CI.
"""

from __future__ import annotations

import socket
from pathlib import Path

import docker
import pytest
from relman_common.errors import InvalidArgument, NotFound, Unavailable
from relman_release.images import Builder, BuildRequest, BuiltImage, get_builder
from relman_release.images.base import BASE_NOT_FOUND, DOCKER_UNAVAILABLE, BuildFailed
from relman_release.images.layout import LayoutStore
from relman_release.images.local import LocalBuilder
from support.containers import BaseImage, DockerDaemon, Registry
from support.images import MakeContext

pytestmark = pytest.mark.xdist_group("containers")

SCRIPT = ('#!/bin/sh\necho "hello from $GREETING in $(pwd)"\n', 0o755)


def run(daemon: DockerDaemon, image: str, *command: str) -> str:
    """Pull ``image`` (by digest) from the registry into the daemon and run it."""
    client = docker.DockerClient(base_url=daemon.host)
    try:
        client.images.pull(image)
        output = client.containers.run(
            image, list(command) or None, remove=True, network_mode="none"
        )
        return bytes(output).decode()
    finally:
        client.close()


def build(builder: Builder, context: Path, image: str, **build_args: str) -> BuiltImage:
    lines: list[str] = []
    built: BuiltImage = builder.build(
        BuildRequest(context, image, build_args=build_args), lines.append
    )
    assert lines[-1] == f"Pushed {image} digest: {built.digest}"
    return built


def test_local_builder_image_is_pulled_by_digest_and_runs(
    docker_daemon: DockerDaemon,
    registry: Registry,
    base_image: BaseImage,
    make_context: MakeContext,
) -> None:
    context = make_context(
        {
            "Dockerfile": f"FROM {base_image.ref}\nARG GREETING=hi\n"
            'ENV GREETING=$GREETING\nWORKDIR /srv/app\nCOPY run.sh ./\nCMD ["./run.sh"]\n',
            "run.sh": SCRIPT,
        }
    )
    builder = get_builder("local", registry=f"{registry.addr}/relman")
    image = f"{registry.addr}/relman/myapp:web.BABCDEFGHIJ"
    built = build(builder, context, image, GREETING="bonjour")
    assert build(builder, context, image, GREETING="bonjour").digest == built.digest
    assert run(docker_daemon, built.pinned) == "hello from bonjour in /srv/app\n"
    listing = run(docker_daemon, built.pinned, "ls", "-A", "/srv/app")
    assert listing.split() == ["run.sh"]


def test_local_builder_without_a_registry_copies_the_base_into_the_layout(
    registry: Registry, base_image: BaseImage, make_context: MakeContext, tmp_path: Path
) -> None:
    context = make_context({"Dockerfile": f"FROM {base_image.ref}\nCOPY a /a\n", "a": "a"})
    store = LayoutStore(tmp_path / "layout")
    built = build(LocalBuilder(store), context, "myapp:web.BABCDEFGHIJ")
    manifest = store.get_manifest("myapp", built.digest).json
    assert all(store.has_blob("myapp", layer["digest"]) for layer in manifest["layers"])


def test_docker_builder_runs_run_and_pushes(
    docker_daemon: DockerDaemon,
    registry: Registry,
    base_image: BaseImage,
    make_context: MakeContext,
) -> None:
    context = make_context(
        {
            "Dockerfile": f"FROM {base_image.ref}\nARG WHO=world\nCOPY msg /msg\n"
            'RUN echo "built for $WHO" >> /msg\nCMD ["cat", "/msg"]\n',
            "msg": "from the docker builder\n",
        }
    )
    builder = get_builder(
        "docker", registry=f"{registry.addr}/relman", docker_host=docker_daemon.host
    )
    built = build(builder, context, f"{registry.addr}/relman/myapp:worker.BABCDEFGHIJ", WHO="me")
    assert run(docker_daemon, built.pinned) == "from the docker builder\nbuilt for me\n"


@pytest.mark.parametrize(
    ("dockerfile", "error", "words"),
    [
        ("FROM {base}\nRUN exit 3\n", BuildFailed, "returned a non-zero code: 3"),
        ("FROM {registry}/no/such:base\n", NotFound, "manifest unknown"),
        ("FROM {base}\nCOPPY a /a\n", InvalidArgument, "unknown instruction"),
        ("FROM {base}\nCOPY missing /a\n", InvalidArgument, "COPY failed"),
    ],
)
def test_docker_builder_failures_carry_the_daemons_words(
    docker_daemon: DockerDaemon,
    registry: Registry,
    base_image: BaseImage,
    make_context: MakeContext,
    dockerfile: str,
    error: type[Exception],
    words: str,
) -> None:
    text = dockerfile.format(base=base_image.ref, registry=registry.addr)
    context = make_context({"Dockerfile": text})
    builder = get_builder(
        "docker", registry=f"{registry.addr}/relman", docker_host=docker_daemon.host
    )
    with pytest.raises(error, match=words) as err:
        builder.build(BuildRequest(context, f"{registry.addr}/relman/myapp:web.B"), lambda _: None)
    if error is NotFound:
        assert err.value.reason == BASE_NOT_FOUND  # type: ignore[attr-defined]


def test_docker_builder_with_its_daemon_down_names_docker_host(
    make_context: MakeContext, tmp_path: Path
) -> None:
    host = f"unix://{tmp_path}/no-daemon.sock"
    builder = get_builder("docker", registry="127.0.0.1:5000", docker_host=host)
    context = make_context({"Dockerfile": "FROM scratch\n"})
    with pytest.raises(Unavailable) as err:
        builder.build(BuildRequest(context, "127.0.0.1:5000/app:web.B"), lambda _: None)
    assert f"the Docker daemon at {host} cannot be reached" in str(err.value)
    assert "DOCKER_HOST" in str(err.value)
    assert err.value.reason == DOCKER_UNAVAILABLE


def test_docker_builder_with_the_registry_down_is_unavailable(
    docker_daemon: DockerDaemon, make_context: MakeContext
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{sock.getsockname()[1]}"
    builder = get_builder("docker", registry=addr, docker_host=docker_daemon.host)
    context = make_context({"Dockerfile": f"FROM {addr}/busybox\n"})
    with pytest.raises(Unavailable, match="connection refused"):
        builder.build(BuildRequest(context, f"{addr}/app:web.B"), lambda _: None)
