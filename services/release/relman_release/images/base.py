"""The one small interface every image builder implements (``local``, ``docker``).

A builder turns an unpacked build context into an image in a registry (or the OCI layout
store) and answers with the image's digest. It knows nothing of apps, builds or releases: the
build runner names the context, the Dockerfile and the image, and keeps the log lines.

Errors are :mod:`relman_common.errors` types whose message a person can act on:
``InvalidArgument`` for a Dockerfile the builder cannot read or a context that lacks a file,
``NotFound`` for a base image the registry does not have, ``Unavailable`` for a registry or a
Docker daemon that cannot be reached, :class:`BuildFailed` for a build the daemon ran and that
failed, ``FailedPrecondition`` for what the chosen builder cannot do (``RUN`` with ``local``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.vocabulary import quote

from relman_release.images.reference import parse_image

# One line of a build's log, without its newline.
LogFn = Callable[[str], None]

# Stable reasons (ErrorInfo.reason) of the errors builders raise.
NO_DOCKERFILE = "NO_DOCKERFILE"
INVALID_DOCKERFILE = "INVALID_DOCKERFILE"
MISSING_SOURCE = "MISSING_SOURCE"
BASE_NOT_FOUND = "BASE_NOT_FOUND"
UNSUPPORTED_INSTRUCTION = "UNSUPPORTED_INSTRUCTION"
BUILD_FAILED = "BUILD_FAILED"
REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
DOCKER_UNAVAILABLE = "DOCKER_UNAVAILABLE"

USE_DOCKER = "use the docker builder (RELMAN_BUILDER=docker)"


class BuildFailed(FailedPrecondition):
    """The builder ran the build and it failed (a ``RUN`` that exited non-zero, a daemon
    that refused the Dockerfile); the message is the builder's own."""

    default_reason = BUILD_FAILED


@dataclass(frozen=True)
class BuildRequest:
    """One image to build.

    ``context`` is the unpacked build context (exactly the files the image may get: a
    ``.dockerignore`` was applied before); ``dockerfile`` is a path inside it; ``image`` is the
    name to push, ``<registry>/<app>:<service>.<BuildID>`` (see
    :func:`relman_release.images.reference.image_name`).
    """

    context: Path
    image: str
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)
    # Build every step again (docker builder); the local builder has no cache to skip.
    no_cache: bool = False


@dataclass(frozen=True)
class BuiltImage:
    """The pushed image: the name it was pushed as and its manifest's digest."""

    reference: str
    digest: str

    @property
    def pinned(self) -> str:
        """``repo@sha256:...``: the reference releases and deployments use."""
        return parse_image(self.reference).pinned(self.digest)


class Builder(Protocol):
    """Builds images. Implementations are safe to call from several threads at once."""

    name: str

    def build(self, request: BuildRequest, log: LogFn) -> BuiltImage:
        """Build ``request``'s image, push it, and return it; ``log`` gets each line of the
        build's log as it happens. Raises the errors described in this module."""
        ...


def dockerfile_path(request: BuildRequest) -> Path:
    """The request's Dockerfile, checked to be a file inside the context."""
    context = request.context.resolve()
    if not context.is_dir():
        raise InvalidArgument(f"the build context {context} is not a directory")
    path = (context / request.dockerfile).resolve()
    if not path.is_relative_to(context):
        raise InvalidArgument(
            f"the Dockerfile path {quote(request.dockerfile)} is outside the build context",
            reason=NO_DOCKERFILE,
        )
    if not path.is_file():
        raise InvalidArgument(
            f"no Dockerfile: {quote(request.dockerfile)} is not a file in the build context",
            reason=NO_DOCKERFILE,
        )
    return path
