"""Image names as Docker writes them: ``[registry/]repository[:tag][@digest]``, and the
registry setting ``[http://|https://]host[:port][/prefix]``.

>>> ref = parse_image("127.0.0.1:5000/relman/myapp:web.BABCDEFGHIJ")
>>> ref.registry, ref.repository, ref.tag
('127.0.0.1:5000', 'relman/myapp', 'web.BABCDEFGHIJ')
>>> ref.pinned("sha256:" + "a" * 64) == "127.0.0.1:5000/relman/myapp@sha256:" + "a" * 64
True
>>> parse_image("busybox").registry, parse_image("busybox").tag
('', 'latest')
>>> image_name(parse_registry("127.0.0.1:5000/relman"), "myapp", "web", "BABCDEFGHIJ")
'127.0.0.1:5000/relman/myapp:web.BABCDEFGHIJ'
>>> image_name(None, "myapp", "web", "BABCDEFGHIJ")
'myapp:web.BABCDEFGHIJ'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from relman_common.errors import InvalidArgument
from relman_common.vocabulary import quote

# The grammar of github.com/distribution/reference, in the parts relman needs.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?"  # name or IPv4, port
    r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?"  # [IPv6], port
)


@dataclass(frozen=True)
class ImageRef:
    """A parsed image name. ``registry`` is ``""`` for a name without one (Docker Hub for
    Docker; for relman: the configured store)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``registry/repository``, or the repository alone."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def reference(self) -> str:
        """What a registry's manifest endpoint takes: the digest if there is one, else the tag."""
        return self.digest or self.tag

    def pinned(self, digest: str) -> str:
        """``name@digest``: the reference a deployment should use."""
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _has_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_image(text: str) -> ImageRef:
    """An image name; a name with neither tag nor digest gets the tag ``latest``."""
    rest, _, digest = text.strip().partition("@")
    if digest and not DIGEST.fullmatch(digest):
        raise InvalidArgument(f"invalid digest in image name {quote(text)}")
    registry = ""
    first, slash, after = rest.partition("/")
    if slash and _has_registry(first):
        registry, rest = first, after
    repository, tag = rest, ""
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        repository, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid tag in image name {quote(text)}")
    if not _REPOSITORY.fullmatch(repository) or (registry and not _HOST.fullmatch(registry)):
        raise InvalidArgument(
            f"invalid image name {quote(text)}: expected [registry/]name[:tag][@digest], "
            "with a lowercase name"
        )
    if not tag and not digest:
        tag = "latest"
    return ImageRef(registry, repository, tag, digest)


@dataclass(frozen=True)
class Registry:
    """The registry images go to: ``host`` (with port), a repository ``prefix`` (may be
    ``""``) and whether it speaks plain HTTP."""

    host: str
    prefix: str = ""
    insecure: bool = False

    def repository(self, app: str) -> str:
        return f"{self.prefix}/{app}" if self.prefix else app

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (with or without a port) names this machine."""
    name = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_registry(text: str) -> Registry:
    """``RELMAN_REGISTRY``: ``host[:port][/prefix]``, optionally with ``http://`` (plain HTTP)
    or ``https://``. Without a scheme, loopback hosts use plain HTTP (as Docker does) and all
    others HTTPS."""
    value = text.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    elif scheme not in ("http", "https"):
        raise InvalidArgument(f"RELMAN_REGISTRY: unknown scheme {quote(scheme)}: use http or https")
    host, _, prefix = rest.partition("/")
    if not host or not _HOST.fullmatch(host) or (prefix and not _REPOSITORY.fullmatch(prefix)):
        raise InvalidArgument(
            f"RELMAN_REGISTRY must be host[:port][/prefix], not {quote(text)}", field="registry"
        )
    insecure = scheme == "http" or (not scheme and is_loopback(host))
    return Registry(host, prefix, insecure)


def image_name(registry: Registry | None, app: str, service: str, build_id: str) -> str:
    """Where a build's image for a service goes: ``<registry>/<app>:<service>.<BuildID>``
    (``<app>:<service>.<BuildID>`` in the OCI layout store, when no registry is set)."""
    repository = registry.repository(app) if registry else app
    name = f"{registry.host}/{repository}" if registry else repository
    return f"{name}:{service}.{build_id}"
