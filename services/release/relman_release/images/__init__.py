"""Images without the rest of the system: builders, and the stores images go to.

No gRPC and no SQL here. :func:`get_builder` makes a builder by name, like the Deployer's
``get_backend``; a builder's module (and the Docker SDK) is imported only when asked for.

- ``local`` (:mod:`.local`): the embedded default, no daemon. A real OCI image from the
  Dockerfile's ``FROM`` and the build context as one layer; reproducible.
- ``docker`` (:mod:`.docker_builder`): any Docker Engine API at ``DOCKER_HOST``; every
  Dockerfile instruction, including ``RUN``.

Images go to ``RELMAN_REGISTRY`` (:mod:`.registry`), or without one (local builder only) to
an OCI image layout under the data dir (:mod:`.layout`).
"""

from __future__ import annotations

from pathlib import Path

from relman_common.errors import InvalidArgument

from relman_release.images.base import Builder, BuildRequest, BuiltImage, LogFn
from relman_release.images.reference import image_name, parse_registry
from relman_release.images.store import ImageStore, open_store

BUILDERS = ("local", "docker")


def get_builder(
    name: str,
    *,
    registry: str | None = None,
    registry_username: str = "",
    registry_password: str = "",
    data_dir: Path | None = None,
    docker_host: str | None = None,
) -> Builder:
    """A builder by name (``RELMAN_BUILDER``), with the settings it takes: ``registry``
    (``RELMAN_REGISTRY``; unset: the OCI layout at ``<data_dir>/images``, local builder
    only), its credentials, and ``docker_host`` (``DOCKER_HOST``; unset: Docker's default)."""
    if name == "local":
        from relman_release.images.local import LocalBuilder

        store = open_store(registry, data_dir, registry_username, registry_password)
        return LocalBuilder(store)
    if name == "docker":
        from relman_release.images.docker_builder import DockerBuilder

        return DockerBuilder(
            docker_host=docker_host,
            registry=registry,
            registry_username=registry_username,
            registry_password=registry_password,
        )
    raise InvalidArgument(f"unknown builder {name!r}: expected one of {', '.join(BUILDERS)}")


__all__ = [
    "BUILDERS",
    "BuildRequest",
    "Builder",
    "BuiltImage",
    "ImageStore",
    "LogFn",
    "get_builder",
    "image_name",
    "open_store",
    "parse_registry",
]
