"""The registry store: names and settings, and a registry that is down. (The distribution API's
blobs and manifests, against a real registry, are in tests/e2e/containers/test_images_registry.py.)
"""

from __future__ import annotations

import socket

import pytest
from relman_common.errors import InvalidArgument, Unavailable
from relman_release.images.base import REGISTRY_UNAVAILABLE
from relman_release.images.reference import Registry, image_name, parse_image, parse_registry
from relman_release.images.store import open_store


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000", Registry("127.0.0.1:5000", "", insecure=True)),
        ("localhost:5000/relman/", Registry("localhost:5000", "relman", insecure=True)),
        ("registry.example.com/team/relman", Registry("registry.example.com", "team/relman")),
        ("http://registry.lan:5000", Registry("registry.lan:5000", "", insecure=True)),
        ("https://[::1]:5000", Registry("[::1]:5000", "", insecure=False)),
    ],
)
def test_the_registry_setting_is_read_with_its_prefix_and_scheme(
    text: str, expected: Registry
) -> None:
    assert parse_registry(text) == expected


@pytest.mark.parametrize("text", ["", "ftp://r:1", "r:1/UPPER", "r:1/a//b", "-bad-/x"])
def test_a_bad_registry_setting_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_registry(text)


def test_images_are_named_registry_app_service_build() -> None:
    assert image_name(parse_registry("r:5000/relman"), "myapp", "web", "BABCDEFGHIJ") == (
        "r:5000/relman/myapp:web.BABCDEFGHIJ"
    )
    ref = parse_image("r:5000/relman/myapp:web.BABCDEFGHIJ")
    assert (ref.registry, ref.repository, ref.tag) == ("r:5000", "relman/myapp", "web.BABCDEFGHIJ")
    with pytest.raises(InvalidArgument):
        parse_image("r:5000/MyApp:web")


def test_a_registry_that_is_down_is_unavailable_naming_it() -> None:
    addr = f"127.0.0.1:{closed_port()}"
    store = open_store(addr)
    with pytest.raises(Unavailable) as err:
        store.get_manifest("busybox", "latest")
    assert f"registry {addr} cannot be reached" in str(err.value)
    assert err.value.reason == REGISTRY_UNAVAILABLE
