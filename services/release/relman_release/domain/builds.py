"""Builds and their images: which services need one, and what each service runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from relman_common.errors import (
    EMPTY_MANIFEST,
    ENV_REQUIRED,
    FailedPrecondition,
    InvalidArgument,
)
from relman_common.manifest import Manifest, Service, parse_manifest
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
