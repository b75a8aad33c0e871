"""The registry store against a real registry: the distribution API's blobs and manifests.

The ``registry`` fixture is the loopback ``docker-registry`` of ``tests/support/containers.py``.
(Names, settings and a registry that is down are in
tests/unit/release/images/test_images_registry.py.)
"""

from __future__ import annotations

import io

import pytest
from relman_common.errors import InvalidArgument, NotFound
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
from relman_release.images.reference import parse_registry
from relman_release.images.registry import RegistryStore
from relman_release.images.store import read_blob
from support.containers import Registry as RunningRegistry

pytestmark = pytest.mark.xdist_group("containers")


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


def test_a_blob_mounts_from_another_repository(registry_store: RegistryStore) -> None:
    layer = b"shared base layer"
    registry_store.put_blob("base", sha256_digest(layer), io.BytesIO(layer))
    assert registry_store.mount_blob("app", sha256_digest(layer), "base")
    assert registry_store.has_blob("app", sha256_digest(layer))


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


def test_a_manifest_whose_blobs_are_missing_is_refused(registry_store: RegistryStore) -> None:
    config = b"{}"
    manifest = Manifest.of(image_manifest(descriptor(OCI_CONFIG, config), [], {}))
    with pytest.raises(InvalidArgument, match="refused manifest"):
        registry_store.put_manifest("app", "broken", manifest)
