"""The registry store: names and settings, a registry that is down, and — against the real
registry of ``tests/containers.py`` — the distribution API's blobs and manifests.

The ``registry`` fixture is the loopback ``docker-registry`` of ``tests/containers.py``.
"""

from __future__ import annotations

import io
import socket

import pytest
from relman_common.errors import InvalidArgument, NotFound, Unavailable
from relman_release.images.base import REGISTRY_UNAVAILABLE
from relman_release.images.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    Manifest,
    descriptor,
    image_manifest,
    sha256_digest,
)
from relman_release.images.reference import Registry, image_name, parse_image, parse_registry
from relman_release.images.registry import RegistryStore
from relman_release.images.store import open_store, read_blob

from tests.containers import Registry as RunningRegistry


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


# --- against a real registry (tests/containers.py) -------------------------------------------

containers = pytest.mark.xdist_group("containers")


@pytest.fixture
def registry_store(registry: RunningRegistry) -> RegistryStore:
    return RegistryStore(parse_registry(f"{registry.addr}/relman-test"))


def push_image(store: RegistryStore, repository: str, layer: bytes, docker: bool) -> Manifest:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    for blob in (layer, config):
        store.put_blob(repository, sha256_digest(blob), io.BytesIO(blob))
    config_type, layer_type = (
        (DOCKER_CONFIG, DOCKER_LAYER_GZIP) if docker else (OCI_CONFIG, OCI_LAYER_GZIP)
    )
    return Manifest.of(
        image_manifest(descriptor(config_type, config), [descriptor(layer_type, layer)], {})
    )


@containers
@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_blobs_and_manifests_go_in_and_come_back_as_they_were(
    registry_store: RegistryStore, docker: bool
) -> None:
    layer = f"layer for {docker}".encode()
    manifest = push_image(registry_store, "app", layer, docker)
    assert registry_store.has_blob("app", sha256_digest(layer))
    assert read_blob(registry_store, "app", sha256_digest(layer)) == layer
    registry_store.put_manifest("app", "v1", manifest)
    for reference in ("v1", manifest.digest):
        got = registry_store.get_manifest("app", reference)
        # Asked with Docker's and OCI's types, a Docker manifest comes back unconverted.
        assert got == manifest
    assert (manifest.media_type == DOCKER_MANIFEST) == docker


@containers
def test_a_blob_mounts_from_another_repository(registry_store: RegistryStore) -> None:
    layer = b"shared base layer"
    registry_store.put_blob("base", sha256_digest(layer), io.BytesIO(layer))
    assert registry_store.mount_blob("app", sha256_digest(layer), "base")
    assert registry_store.has_blob("app", sha256_digest(layer))


@containers
def test_delete_by_digest_and_by_tag(registry_store: RegistryStore) -> None:
    first = push_image(registry_store, "app", b"first", docker=False)
    second = push_image(registry_store, "app", b"second", docker=False)
    registry_store.put_manifest("app", "one", first)
    registry_store.put_manifest("app", "two", second)
    registry_store.delete_manifest("app", first.digest)
    registry_store.delete_manifest("app", "two")
    for reference in ("one", first.digest, "two", second.digest):
        with pytest.raises(NotFound):
            registry_store.get_manifest("app", reference)
    with pytest.raises(NotFound):
        registry_store.delete_manifest("app", first.digest)


@containers
def test_a_manifest_whose_blobs_are_missing_is_refused(registry_store: RegistryStore) -> None:
    config = b"{}"
    manifest = Manifest.of(image_manifest(descriptor(OCI_CONFIG, config), [], {}))
    with pytest.raises(InvalidArgument, match="refused manifest"):
        registry_store.put_manifest("app", "broken", manifest)
