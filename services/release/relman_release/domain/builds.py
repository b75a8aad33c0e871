"""Builds and their images: which services need one, and what each service runs."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Set
from dataclasses import replace

from relman_common.errors import (
    EMPTY_MANIFEST,
    ENV_REQUIRED,
    FailedPrecondition,
    InvalidArgument,
)
from relman_common.manifest import BuildSpec, Manifest, Service, parse_manifest
from relman_common.vocabulary import quote, service_name_error

from relman_release.domain.model import Build, Release

EMPTY_MANIFEST_MESSAGE = "can not promote a release with an empty manifest"
# Names listed in one message at most.
MAX_NAMES_SHOWN = 10


def _names(names: list[str]) -> str:
    """Service names for a message: valid names as they are, anything else quoted (short, no
    NUL), at most MAX_NAMES_SHOWN of them.

    >>> _names(["api", "web"]), _names(["x" * 200])[-5:], _names([f"s{i}" for i in range(12)])[-13:]
    ('api, web', 'xxx…"', 's9 and 2 more')
    """
    shown = [n if not service_name_error(n) else quote(n) for n in names[:MAX_NAMES_SHOWN]]
    more = len(names) - MAX_NAMES_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def validate_images(manifest: Manifest, images: Mapping[str, str]) -> dict[str, str]:
    """Check the image references given with a build against the manifest's services.

    Every service that uses ``build:`` or names no ``image:`` needs one; an image for a service
    the manifest does not define is an error.
    """
    unknown = sorted(images.keys() - set(manifest.names))
    if unknown:
        raise InvalidArgument(
            f"images given for services not in the manifest: {_names(unknown)}",
            field="images",
        )
    for service, ref in images.items():
        if not ref.strip() or any(c.isspace() for c in ref) or "\x00" in ref:
            raise InvalidArgument(
                f"invalid image reference for service {service}: {quote(ref)}", field="images"
            )
    missing = sorted(
        s.name for s in manifest.services if s.needs_built_image and s.name not in images
    )
    if missing:
        raise InvalidArgument(
            f"no image given for service {_names(missing)}: services that use build: or "
            "name no image: need an image reference",
            field="images",
        )
    return dict(sorted(images.items()))


def deployable_services(
    release: Release, build: Build | None, *, check_env: bool = True
) -> tuple[Manifest, tuple[Service, ...]]:
    """The manifest of ``release``'s build and its services as they run: each with the image
    to run. FailedPrecondition when there is nothing to deploy or (with ``check_env``) a
    required env key is not set in the release."""
    manifest = parse_manifest(build.manifest) if build is not None else Manifest()
    if manifest.empty or build is None:
        raise FailedPrecondition(EMPTY_MANIFEST_MESSAGE, reason=EMPTY_MANIFEST)
    missing = manifest.missing_env(release.env) if check_env else []
    if missing:
        raise FailedPrecondition(
            f"release {release.id} can not be deployed: the manifest requires env "
            f"{', '.join(missing)} (set with: relman env set)",
            reason=ENV_REQUIRED,
        )
    services = tuple(
        replace(s, image=build.images.get(s.name) or s.image) for s in manifest.services
    )
    return manifest, services


# (build path, Dockerfile path inside it), both normal relative paths ("." for the root).
BuildSource = tuple[str, str]


def build_plan(manifest: Manifest) -> dict[BuildSource, list[str]]:
    """The images a build from source makes: one per distinct build path and Dockerfile,
    with the services that run it, in the manifest's order. A service that names neither
    ``build:`` nor ``image:`` is built from the root, as Convox does.

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
    """``path`` as the source archive names it ("" for the root)."""
    normal = posixpath.normpath(path)
    return "" if normal == "." else normal


def check_build_sources(
    plan: Mapping[BuildSource, list[str]], files: Set[str], dirs: Set[str]
) -> None:
    """Every build path of ``plan`` is a directory of the source and holds its Dockerfile;
    InvalidArgument naming the service and the path otherwise."""
    for (path, dockerfile), services in plan.items():
        who = f"service {_names(services)}"
        if _in_source(path) not in dirs:
            raise InvalidArgument(
                f"{who}: the build path {quote(path)} is not a directory of the source",
                reason="MISSING_SOURCE",
                field="source_sha256",
            )
        inside = _in_source(posixpath.join(path, dockerfile))
        if inside.startswith("../") or inside == ".." or inside not in files:
            raise InvalidArgument(
                f"{who}: no Dockerfile: {quote(posixpath.join(path, dockerfile))} is not a "
                "file of the source",
                reason="NO_DOCKERFILE",
                field="source_sha256",
            )
