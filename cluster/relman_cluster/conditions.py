"""How the kubelet emulator decides what a container would do, without running it.

The emulator runs no containers, so each failure a real node produces is decided from what the
pod says, by rules that are written down here and nowhere else:

* **Image references** are parsed with the distribution reference grammar (as the kubelet
  does before pulling): one that does not parse is ``InvalidImageName``.
* **Pulls**: an image whose registry host is a loopback address (``127.0.0.1:5000/app:1``,
  ``localhost:5000/...``) is looked up for real in that registry (``GET /v2/<repo>/manifests/
  <tag>`` over plain HTTP): a 404 is ``ErrImagePull`` "not found", as is a registry that cannot
  be reached. Other registries cannot be reached from a test machine, so an image there is
  pulled unless its tag contains ``unpullable`` (the same kind of tag convention as ``crash``
  and ``unready``).
* **Config**: ``env`` and ``envFrom`` references to Secrets and ConfigMaps are resolved from the
  API (non-optional ones must exist), else ``CreateContainerConfigError`` with the kubelet's
  message (``secret "x" not found``).
* **Exits**: a container whose command (``command`` + ``args``) ends in ``exit N``, ``false``
  or ``true`` is a process that ends; under the pod's restart policy ``Always`` it restarts
  into ``CrashLoopBackOff`` (last state ``Error`` with that code, or ``Completed`` for 0).
* **Memory**: the container's environment variable ``RELMAN_KUBELET_MEMORY_USAGE`` (a
  quantity: ``600Mi``) is the memory its process would use; above the container's
  ``resources.limits.memory`` it is ``OOMKilled`` (exit 137) and restarts into a crash loop.

>>> valid_reference("registry.example/app:web.1"), valid_reference("Bad/Name:1")
(True, False)
>>> split_reference("127.0.0.1:5000/team/app:v1")
('127.0.0.1:5000', 'team/app', 'v1')
>>> split_reference("busybox")
('docker.io', 'library/busybox', 'latest')
>>> command_exit({"args": ["sh", "-c", "echo hi; exit 3"]}), command_exit({"command": ["false"]})
(3, 1)
>>> command_exit({"args": ["bin/web"]}) is None
True
>>> parse_quantity("64Mi"), parse_quantity("1G"), parse_quantity("512")
(67108864, 1000000000, 512)
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import urllib.error
import urllib.request
from typing import Any

Json = dict[str, Any]

MEMORY_USAGE_ENV = "RELMAN_KUBELET_MEMORY_USAGE"
UNPULLABLE_MARK = "unpullable"
OOM_EXIT_CODE = 137

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)

_EXIT = re.compile(r"(?:^|[;&|\n]\s*)(?:exit\s+(\d+)|(?:/usr)?(?:/bin/)?(false|true))\s*;?\s*$")

_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def valid_reference(image: str) -> bool:
    return len(image) <= 255 and _REFERENCE.fullmatch(image) is not None


def split_reference(image: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest), normalised as Docker does."""
    match = _REFERENCE.fullmatch(image)
    if match is None:
        raise ValueError(f"invalid reference format: {image!r}")
    name, tag, digest = match.groups()
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return domain, path, digest or tag or "latest"


def is_loopback_host(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pull_error(image: str, timeout: float = 5.0) -> str | None:
    """Why pulling ``image`` fails, in containerd's words (None: it can be pulled)."""
    domain, path, reference = split_reference(image)
    if is_loopback_host(domain):
        url = f"http://{domain}/v2/{path}/manifests/{reference}"
        request = urllib.request.Request(
            url, headers={"Accept": ", ".join(MANIFEST_TYPES)}, method="HEAD"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return None
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return _not_found(image)
            return (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": unexpected status code {err.code}'
            )
        except (urllib.error.URLError, OSError) as err:
            why = getattr(err, "reason", err)
            return (
                f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": failed to do request: Head "{url}": '
                f"{why}"
            )
    tag = reference if ":" not in reference else ""
    if UNPULLABLE_MARK in tag.lower():
        return _not_found(image)
    return None


def _not_found(image: str) -> str:
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": {image}: not found'
    )


def command_exit(container: Json) -> int | None:
    """The exit code the container's command ends with, when it plainly ends."""
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        return None
    script = argv[-1] if len(argv) >= 3 and argv[-2] == "-c" else shlex.join(argv)
    match = _EXIT.search(script.strip())
    if match is None:
        return None
    code, builtin = match.groups()
    if code is not None:
        return int(code) % 256
    return 0 if builtin == "true" else 1


def parse_quantity(text: str) -> int:
    """A Kubernetes quantity as a whole number (bytes for memory)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kMGT]i?|)\s*", str(text))
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit])


def memory_exceeded(container: Json, env: dict[str, str]) -> bool:
    """The container's process would use more memory than its limit (see the module)."""
    usage = env.get(MEMORY_USAGE_ENV)
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if not usage or not limit:
        return False
    try:
        return parse_quantity(usage) > parse_quantity(str(limit))
    except ValueError:
        return False
