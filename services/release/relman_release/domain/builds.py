"""Builds and their images: which services need one, and what each service runs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace

from relman_common.errors import (
    EMPTY_MANIFEST,
    ENV_REQUIRED,
    FailedPrecondition,
    InvalidArgument,
)
from relman_common.manifest import Manifest, Service, parse_manifest
from relman_common.vocabulary import listed, quote, service_name_error

from relman_release.domain.model import Build, Release

EMPTY_MANIFEST_MESSAGE = "can not promote a release with an empty manifest"
# Parsed manifests are kept by their text: every GetDeployable needs the manifests of the
# release and of the active release, the same few again and again, and parsing the YAML was
# most of its cost. The model is immutable, so sharing one is safe. Long texts are not kept.
MANIFEST_CACHE_SIZE = 256
MAX_CACHED_MANIFEST_CHARS = 64 * 1024


def _names(names: list[str]) -> str:
    """Service names for a message: valid names as they are, anything else quoted (short, no
    NUL), as many as a message has room for (vocabulary.listed).

    >>> _names(["api", "web"]), _names(["x" * 200])[-5:], _names([f"s{i}" for i in range(12)])[-13:]
    ('api, web', 'xxx…"', 's9 and 2 more')
    """
    return listed(names, lambda n: n if not service_name_error(n) else quote(n))


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
    manifest = parsed_manifest(build.manifest) if build is not None else Manifest()
    if manifest.empty or build is None:
        raise FailedPrecondition(EMPTY_MANIFEST_MESSAGE, reason=EMPTY_MANIFEST)
    missing = manifest.missing_env(release.env) if check_env else []
    if missing:
        raise FailedPrecondition(
            f"release {release.id} can not be deployed: the manifest requires env "
            f"{listed(missing)} (set with: relman env set)",
            reason=ENV_REQUIRED,
        )
    services = tuple(
        replace(s, image=build.images.get(s.name) or s.image) for s in manifest.services
    )
    return manifest, services


@functools.lru_cache(maxsize=MANIFEST_CACHE_SIZE)
def _parse_kept(text: str) -> Manifest:
    return parse_manifest(text)


def parsed_manifest(text: str) -> Manifest:
    """``parse_manifest(text)``, from memory when the same text was parsed lately."""
    if len(text) > MAX_CACHED_MANIFEST_CHARS:
        return parse_manifest(text)
    return _parse_kept(text)
