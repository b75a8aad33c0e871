"""Retention against a real registry (SPEC 9): builds made by the embedded local builder are
pushed to the loopback docker-registry (RELMAN_REGISTRY); ``relman releases prune`` deletes
the pruned build's image from the registry by digest and leaves the kept ones, on the
embedded default and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.containers import MANIFEST_TYPES
from support.containers import Registry as RunningRegistry
from support.helpers import wait_for
from support.ops_stack import DB_KINDS, Stack, stack_on

pytestmark = pytest.mark.xdist_group("containers")

DOCKERFILE = 'FROM scratch\nCOPY . /app\nCMD ["/app/bin/web"]\n'
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"
PREFIX = "relman-retention"


@pytest.fixture(params=DB_KINDS)
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, registry: RunningRegistry
) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path, RELMAN_REGISTRY=f"{registry.addr}/{PREFIX}")


def build(stack: Stack, n: int) -> tuple[str, str]:
    """(release, image by digest) of a build of a tree unlike any other."""
    root = stack.tmp / f"src{n}"
    (root / "bin").mkdir(parents=True)
    (root / "convox.yml").write_text(MANIFEST)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "bin/web").write_text(f"#!/bin/sh\n# {n} {stack.tmp.name}\nexec sleep 1000\n")
    done = stack.ok("build", str(root), "-a", "myapp")
    build_id = done.lines[-2].removeprefix("Build: ")
    info = json.loads(stack.ok("builds", "info", build_id, "-a", "myapp", "-o", "json").out)
    return done.lines[-1].removeprefix("Release: "), info["images"]["web"]


def status(registry: RunningRegistry, image: str) -> int:
    name, digest = image.split("@")
    repository = name.split("/", 1)[1]
    code, _, _ = registry.get(
        f"/v2/{repository}/manifests/{digest}", {"Accept": ", ".join(MANIFEST_TYPES)}
    )
    return code


def test_prune_deletes_the_pruned_builds_image_from_the_registry(
    stack: Stack, registry: RunningRegistry
) -> None:
    stack.ok("apps", "create", "myapp")
    (old_release, old_image), (kept_release, kept_image) = build(stack, 1), build(stack, 2)
    assert old_image.startswith(f"{registry.addr}/{PREFIX}/myapp@sha256:"), old_image
    assert status(registry, old_image) == 200 and status(registry, kept_image) == 200
    stack.ok("releases", "promote", kept_release, "-a", "myapp")
    done = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1")
    assert done.lines[0] == f"Pruned 1 releases: {old_release}"
    wait_for(lambda: status(registry, old_image) == 404, timeout=30, what="the image deleted")
    assert status(registry, kept_image) == 200
