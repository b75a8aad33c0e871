"""The base image a Dockerfile's ``FROM`` names, fetched for the local builder.

Where it comes from: ``scratch`` is nothing. A name with a registry host is pulled from that
registry (credentials only go to the configured one); a name without one (``busybox``) is
looked up in the configured store: the registry at its root (``<host>/busybox``) or the OCI
layout (``busybox:latest``). An index (manifest list) gives the image for the build's
platform. Its manifest, config and the kinds of its paths (:class:`.basetree.BaseTree`) are
what the builder needs; trees are kept for the last few bases, by manifest digest.
"""

from __future__ import annotations

import json
import platform as host_platform
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from relman_common.errors import InvalidArgument, NotFound
from relman_common.vocabulary import quote

from relman_release.images.base import BASE_NOT_FOUND, LogFn
from relman_release.images.basetree import BaseTree
from relman_release.images.oci import INDEXES, OCI_CONFIG, Manifest, pick_platform
from relman_release.images.recipe import Base
from relman_release.images.reference import ImageRef, parse_image, parse_registry
from relman_release.images.store import ImageStore, read_blob

_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_KEEP_TREES = 8


def host_architecture() -> str:
    machine = host_platform.machine().lower()
    return _ARCHITECTURES.get(machine, machine)


@dataclass(frozen=True)
class BaseImage:
    """A fetched base, or scratch (``ref`` None): where it lives, its manifest and config."""

    ref: ImageRef | None
    store: ImageStore | None = None
    manifest: Manifest | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tree: BaseTree = field(default_factory=BaseTree)

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.json["layers"]) if self.manifest else []

    @property
    def config_media_type(self) -> str:
        return str(self.manifest.json["config"]["mediaType"]) if self.manifest else OCI_CONFIG


class BaseFetcher:
    """Fetches bases for one configured store; safe to share between threads."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self._trees: OrderedDict[str, BaseTree] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, base: Base, log: LogFn) -> BaseImage:
        if base.image == "scratch":
            log(" ---> scratch: no base layers")
            return BaseImage(None)
        ref = parse_image(base.image)
        store = self._store_for(ref)
        try:
            manifest = store.get_manifest(ref.repository, ref.reference)
            if manifest.media_type in INDEXES:
                os_name, _, arch = (base.platform or f"linux/{host_architecture()}").partition("/")
                chosen = pick_platform(manifest.json, os_name, arch.split("/")[0])
                manifest = store.get_manifest(ref.repository, chosen["digest"])
        except NotFound:
            raise NotFound(
                f"Dockerfile line {base.line}: base image {quote(base.image)} is not in "
                f"{store.describe()}",
                reason=BASE_NOT_FOUND,
            ) from None
        value = manifest.json
        if "config" not in value or "layers" not in value:
            raise InvalidArgument(f"base image {quote(base.image)}: not an image manifest")
        config = json.loads(read_blob(store, ref.repository, value["config"]["digest"]))
        log(f" ---> {ref.name}@{manifest.digest} ({len(value['layers'])} layers)")
        return BaseImage(ref, store, manifest, config, self._tree(store, ref, manifest))

    def _store_for(self, ref: ImageRef) -> ImageStore:
        if not ref.registry or ref.registry == self.store.host:
            return self.store
        from relman_release.images.registry import RegistryStore

        return RegistryStore(parse_registry(ref.registry))

    def _tree(self, store: ImageStore, ref: ImageRef, manifest: Manifest) -> BaseTree:
        with self._lock:
            if manifest.digest in self._trees:
                self._trees.move_to_end(manifest.digest)
                return self._trees[manifest.digest]
        tree = BaseTree()
        for layer in manifest.json["layers"]:
            tree.add_layer(store.open_blob(ref.repository, layer["digest"]))
        with self._lock:
            self._trees[manifest.digest] = tree
            while len(self._trees) > _KEEP_TREES:
                self._trees.popitem(last=False)
        return tree
