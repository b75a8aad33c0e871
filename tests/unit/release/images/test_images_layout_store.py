"""The OCI image layout store: the spec's files, blobs checked by digest, manifests by tag and
by digest, deletes that leave no garbage (and spare blobs of builds in flight)."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest
from relman_common.errors import InvalidArgument, NotFound
from relman_release.images import layout as layout_module
from relman_release.images.layout import LayoutStore
from relman_release.images.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    Manifest,
    descriptor,
    image_manifest,
    sha256_digest,
)
from relman_release.images.store import copy_blob, open_store, read_blob


def put(store: LayoutStore, data: bytes, repository: str = "app") -> str:
    digest = sha256_digest(data)
    store.put_blob(repository, digest, io.BytesIO(data))
    return digest


def an_image(store: LayoutStore, layer: bytes, repository: str = "app") -> Manifest:
    """Store a layer and a config; the manifest of both (not stored)."""
    config = b'{"architecture":"amd64","os":"linux"}'
    put(store, layer, repository)
    put(store, config, repository)
    return Manifest.of(
        image_manifest(descriptor(OCI_CONFIG, config), [descriptor(OCI_LAYER_GZIP, layer)], {})
    )


def blob_names(store: LayoutStore) -> set[str]:
    return {p.name for p in (store.root / "blobs" / "sha256").iterdir()}


def test_a_new_store_is_an_oci_image_layout(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    assert isinstance(store, LayoutStore)
    root = tmp_path / "images"
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert (root / "blobs" / "sha256").is_dir()


def test_blobs_are_stored_by_digest_and_read_back(layout: LayoutStore) -> None:
    digest = put(layout, b"layer bytes")
    assert layout.has_blob("app", digest)
    assert (layout.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).is_file()
    assert read_blob(layout, "other-repo", digest) == b"layer bytes"


def test_bytes_that_do_not_hash_to_the_digest_are_refused_and_not_kept(
    layout: LayoutStore,
) -> None:
    wrong = sha256_digest(b"something else")
    with pytest.raises(InvalidArgument, match="nothing stored"):
        layout.put_blob("app", wrong, io.BytesIO(b"layer bytes"))
    assert blob_names(layout) == set()


def test_manifests_are_found_by_tag_and_by_digest_and_named_in_the_index(
    layout: LayoutStore,
) -> None:
    manifest = an_image(layout, b"one")
    layout.put_manifest("relman/app", "web.BABCDEFGHIJ", manifest)
    assert layout.get_manifest("relman/app", "web.BABCDEFGHIJ") == manifest
    assert layout.get_manifest("relman/app", manifest.digest) == manifest
    (entry,) = json.loads((layout.root / "index.json").read_text())["manifests"]
    assert entry["digest"] == manifest.digest
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == (
        "relman/app:web.BABCDEFGHIJ"
    )
    with pytest.raises(NotFound):
        layout.get_manifest("relman/other", "web.BABCDEFGHIJ")


def test_a_tag_names_one_manifest_and_moves(layout: LayoutStore) -> None:
    first, second = an_image(layout, b"one"), an_image(layout, b"two")
    layout.put_manifest("app", "latest", first)
    layout.put_manifest("app", "latest", second)
    assert layout.get_manifest("app", "latest") == second
    assert len(json.loads((layout.root / "index.json").read_text())["manifests"]) == 1


def test_a_manifest_naming_missing_blobs_is_refused(layout: LayoutStore) -> None:
    config = b"{}"
    manifest = Manifest.of(image_manifest(descriptor(OCI_CONFIG, config), [], {}))
    with pytest.raises(InvalidArgument, match="blobs not in the store"):
        layout.put_manifest("app", "v1", manifest)


def test_delete_by_digest_removes_every_tag_and_the_blobs_nothing_else_uses(
    layout: LayoutStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout_module, "KEEP_UNUSED_SECONDS", 0)
    shared = b"shared layer"
    kept = an_image(layout, b"kept layer")
    gone = an_image(layout, b"gone layer")
    layout.put_manifest("app", "kept", kept)
    layout.put_manifest("app", "a", gone)
    layout.put_manifest("app", "b", gone)
    put(layout, shared)
    layout.delete_manifest("app", gone.digest)
    for tag in ("a", "b"):
        with pytest.raises(NotFound):
            layout.get_manifest("app", tag)
    assert layout.get_manifest("app", "kept") == kept
    names = blob_names(layout)
    assert gone.digest.removeprefix("sha256:") not in names
    assert sha256_digest(b"gone layer").removeprefix("sha256:") not in names
    assert sha256_digest(b"kept layer").removeprefix("sha256:") in names
    with pytest.raises(NotFound):
        layout.delete_manifest("app", gone.digest)


def test_delete_spares_recent_unused_blobs_of_builds_in_flight(layout: LayoutStore) -> None:
    manifest = an_image(layout, b"old")
    layout.put_manifest("app", "v1", manifest)
    in_flight = put(layout, b"a layer whose manifest is not written yet")
    layout.delete_manifest("app", "v1")
    assert layout.has_blob("app", in_flight)
    assert not layout.has_blob("app", manifest.digest)
    old = layout.root / "blobs" / "sha256" / in_flight.removeprefix("sha256:")
    os.utime(old, (0, 0))
    layout.put_manifest("app", "v2", an_image(layout, b"new"))
    layout.delete_manifest("app", "v2")
    assert not layout.has_blob("app", in_flight)


def test_concurrent_pushes_all_land_in_the_index(layout: LayoutStore) -> None:
    manifests = [an_image(layout, f"layer {n}".encode()) for n in range(8)]
    threads = [
        threading.Thread(target=layout.put_manifest, args=("app", f"t{n}", m))
        for n, m in enumerate(manifests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, manifest in enumerate(manifests):
        assert layout.get_manifest("app", f"t{n}") == manifest


def test_copy_blob_between_stores_says_what_it_did(tmp_path: Path) -> None:
    source, target = LayoutStore(tmp_path / "a"), LayoutStore(tmp_path / "b")
    digest = put(source, b"base layer")
    assert copy_blob(source, "base", target, "app", digest) == "copied"
    assert copy_blob(source, "base", target, "app", digest) == "exists"
    assert read_blob(target, "app", digest) == b"base layer"
