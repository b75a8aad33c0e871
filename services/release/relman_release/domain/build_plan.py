"""A build from source: which images it makes, and what the source must hold for them."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Set

from relman_common.errors import InvalidArgument
from relman_common.manifest import BuildSpec, Manifest
from relman_common.vocabulary import quote

# Reasons (ErrorInfo.reason), the words the image builders use for the same faults.
MISSING_SOURCE = "MISSING_SOURCE"
NO_DOCKERFILE = "NO_DOCKERFILE"

# (build path, Dockerfile path inside it), as the manifest's parser normalised them.
BuildSource = tuple[str, str]


def build_plan(manifest: Manifest) -> dict[BuildSource, list[str]]:
    """The images a build from source makes: one per distinct build path and Dockerfile,
    with the services that run it, in the manifest's order. A service that names neither
    ``build:`` nor ``image:`` is built from the root, as Convox does.

    >>> from relman_common.manifest import parse_manifest
    >>> build_plan(parse_manifest("services: {web: {build: .}, worker: {}, db: {image: pg}}"))
    {('.', 'Dockerfile'): ['web', 'worker']}
    """
    plan: dict[BuildSource, list[str]] = {}
    for service in manifest.services:
        if service.build is None and service.image:
            continue
        spec = service.build or BuildSpec()
        plan.setdefault((spec.path, spec.manifest), []).append(service.name)
    return plan


def _in_source(path: str) -> str:
    """``path`` as the source archive's paths are written ("" for the root).

    >>> _in_source("."), _in_source("api/./Dockerfile")
    ('', 'api/Dockerfile')
    """
    normal = posixpath.normpath(path)
    return "" if normal == "." else normal


def check_build_sources(
    plan: Mapping[BuildSource, list[str]], files: Set[str], dirs: Set[str]
) -> None:
    """Every build path of ``plan`` is a directory of the source (``dirs``) and its
    Dockerfile a file (``files``); InvalidArgument naming the services and the path."""
    for (path, dockerfile), services in plan.items():
        who = f"service {', '.join(services[:3])}{' and more' if len(services) > 3 else ''}"
        if _in_source(path) not in dirs:
            raise InvalidArgument(
                f"{who}: the build path {quote(path)} is not a directory of the source",
                reason=MISSING_SOURCE,
                field="source_sha256",
            )
        inside = _in_source(posixpath.join(path, dockerfile))
        if inside not in files:
            raise InvalidArgument(
                f"{who}: no Dockerfile: {quote(inside)} is not a file of the source",
                reason=NO_DOCKERFILE,
                field="source_sha256",
            )
