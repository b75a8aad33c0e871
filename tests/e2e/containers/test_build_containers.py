"""Builds against real parts: a registry (Debian's docker-registry) and a private dockerd,
from the containers harness (tests/support/containers.py; skipped with the reason where Docker
cannot run, never in CI). The local builder pushes to the registry on a busybox base; the
docker builder runs RUN; the images pulled back run with docker and print what the build
put in them; a build moves from a registry rack to a layout rack with its digest."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from relman.v1 import release_pb2 as pb
from support.builds import (
    BuildServer,
    app_source,
    archive,
    build_config,
    export,
    import_requests,
    serving,
)

pytestmark = pytest.mark.xdist_group("containers")

MANIFEST = b"services:\n  web:\n    build: .\n"


def source(base: str, steps: str) -> bytes:
    dockerfile = f'FROM {base}\n{steps}COPY hello /app/hello\nCMD ["cat", "/app/hello"]\n'
    return archive(
        app_source(
            **{
                "convox.yml": MANIFEST,
                "Dockerfile": dockerfile.encode(),
                "hello": b"hello from relman\n",
            }
        )
    )


async def build(s: BuildServer, data: bytes, app: str = "myapp") -> tuple[Any, list[str]]:
    await s.releases.CreateApp(pb.CreateAppRequest(name=app))
    created = await s.create(app, data)
    updates = await s.updates(app, created.id)
    return updates[-1].build, [u.line.text for u in updates if u.HasField("line")]


async def test_the_local_builder_pushes_to_the_registry_and_the_image_runs(
    registry: Any, base_image: Any, docker_daemon: Any, tmp_path: Path, sqlite_url: str
) -> None:
    config = build_config(tmp_path / "data", registry=registry.addr)
    async with serving(sqlite_url, config) as s:
        done, lines = await build(s, source(base_image.ref, ""))
        assert done.status == pb.BUILD_STATUS_COMPLETE, (done.reason, lines)
        image = done.images["web"]
        assert image.startswith(f"{registry.addr}/myapp@sha256:")
        _, digest, _ = registry.manifest("myapp", f"web.{done.id}")
        assert image.endswith(digest)
        ran = docker_daemon.docker("run", "--rm", image)
        assert ran.stdout == "hello from relman\n"
        exported = await export(s, "myapp", done.id)

    # Into a rack without a registry: the OCI layout under its data dir, same digest.
    async with serving(f"sqlite:///{tmp_path / 'b.db'}", build_config(tmp_path / "b")) as b:
        await b.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
        imported = await b.builds.ImportBuildArchive(import_requests("myapp", exported))
    assert imported.build.images["web"] == f"myapp@{digest}"
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest[7:]}"))  # type: ignore[arg-type]
    blobs = tmp_path / "b" / "images" / "blobs" / "sha256"
    for layer in manifest["layers"]:  # the base's layers came along
        assert (blobs / layer["digest"][7:]).is_file()


async def test_the_docker_builder_runs_run_and_fails_with_the_daemons_words(
    registry: Any, base_image: Any, docker_daemon: Any, tmp_path: Path, sqlite_url: str
) -> None:
    config = build_config(
        tmp_path / "data", builder="docker", registry=registry.addr, docker_host=docker_daemon.host
    )
    async with serving(sqlite_url, config) as s:
        done, lines = await build(s, source(base_image.ref, "RUN echo ran >> /app-run\n"))
        assert done.status == pb.BUILD_STATUS_COMPLETE, (done.reason, lines)
        assert any("RUN echo ran" in line for line in lines), lines
        image = done.images["web"]
        assert image.startswith(f"{registry.addr}/myapp@sha256:")
        ran = docker_daemon.docker("run", "--rm", image, "cat", "/app-run", "/app/hello")
        assert ran.stdout == "ran\nhello from relman\n"

        failed, lines = await build(s, source(base_image.ref, "RUN exit 3\n"), app="broken")
        assert failed.status == pb.BUILD_STATUS_FAILED
        assert "exit 3" in failed.reason and "non-zero code: 3" in failed.reason, failed.reason
        assert failed.release_id == "" and lines
        app = await s.releases.GetApp(pb.GetAppRequest(name="broken"))
        assert app.latest_release_id == ""
