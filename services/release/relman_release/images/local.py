"""The ``local`` builder: a real image from a Dockerfile without a daemon or running anything.

The image is the base's layers (``FROM``; scratch has none) plus ONE layer holding what the
COPY/ADD instructions take from the context (the rule is in :mod:`.layer`), and a config made
by the instructions (:mod:`.recipe`) with a history. ``RUN`` and the other instructions that
need a container fail the build, naming the docker builder.

Like ko, the result is reproducible: layer and config carry no time (both are dated
1970-01-01) and no builder's host details, so the same context, Dockerfile, build args and
base give the same manifest digest every time, and pushing it again changes nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from relman_common.dockerignore import IgnoreMatcher, read_patterns
from relman_common.errors import InvalidArgument
from relman_common.vocabulary import quote

from relman_release.images.base import (
    INVALID_DOCKERFILE,
    BuildRequest,
    BuiltImage,
    LogFn,
    dockerfile_path,
)
from relman_release.images.baseimage import BaseFetcher, BaseImage, host_architecture
from relman_release.images.dockerfile import parse_dockerfile
from relman_release.images.layer import Layer, place, write_layer
from relman_release.images.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    EPOCH,
    OCI_LAYER_GZIP,
    Manifest,
    canonical_json,
    descriptor,
    image_manifest,
)
from relman_release.images.recipe import Recipe, apply, log_preamble, read_base
from relman_release.images.reference import ImageRef, parse_image
from relman_release.images.store import ImageStore, copy_blob

# What the base's config says about how the base was built, not about this image.
_BASE_ONLY = ("container", "container_config", "docker_version")


class LocalBuilder:
    """Builds into ``store`` (a registry, or the OCI layout); layers are written in
    ``work_dir`` (the system's temporary directory by default) and removed after the push."""

    name = "local"

    def __init__(self, store: ImageStore, work_dir: Path | None = None) -> None:
        self.store = store
        self.work_dir = work_dir
        self._bases = BaseFetcher(store)

    def build(self, request: BuildRequest, log: LogFn) -> BuiltImage:
        target = self._target(request.image)
        try:
            text = dockerfile_path(request).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"the Dockerfile {quote(request.dockerfile)} is not UTF-8 text",
                reason=INVALID_DOCKERFILE,
            ) from None
        instructions = parse_dockerfile(text)
        base_line = read_base(instructions, request.build_args)
        recipe = apply(instructions, {}, request.build_args, lambda _: None)  # checks first
        log_preamble(instructions, log)
        base = self._bases.fetch(base_line, log)
        recipe = apply(instructions, base.config.get("config") or {}, request.build_args, log)
        if recipe.unused_args:
            log(f"[Warning] build args not used by the Dockerfile: {', '.join(recipe.unused_args)}")
        entries = place(
            request.context, recipe.copies, recipe.workdirs, base.tree, context_ignores(request)
        )
        layer = write_layer(entries, base.tree, self.work_dir) if entries else None
        try:
            if layer is None and base.ref is None:
                raise InvalidArgument(
                    "the image would be empty: FROM scratch and nothing to COPY",
                    reason=INVALID_DOCKERFILE,
                )
            if layer is not None:
                log(f" ---> layer {layer.digest}: {layer.entries} entries, {layer.size} bytes")
            manifest = self._push(target, base, recipe, layer, log)
        finally:
            if layer is not None:
                os.unlink(layer.path)
        log(f"Pushed {target} digest: {manifest.digest}")
        return BuiltImage(str(target), manifest.digest)

    def _target(self, image: str) -> ImageRef:
        target = parse_image(image)
        if target.digest or target.registry != self.store.host:
            where = f"registry {self.store.host}" if self.store.host else "no registry"
            raise InvalidArgument(
                f"cannot push {quote(image)} with {where} configured: expected "
                f"{self.store.host + '/' if self.store.host else ''}<app>:<tag>"
            )
        return target

    def _push(
        self, target: ImageRef, base: BaseImage, recipe: Recipe, layer: Layer | None, log: LogFn
    ) -> Manifest:
        repository = target.repository
        layers = base.layers
        for item in layers:
            assert base.store is not None and base.ref is not None
            how = copy_blob(base.store, base.ref.repository, self.store, repository, item["digest"])
            log(f" ---> base layer {item['digest'][:19]}: {how}")
        layer_type = (
            DOCKER_LAYER_GZIP if base.config_media_type == DOCKER_CONFIG else OCI_LAYER_GZIP
        )
        if layer is not None:
            if not self.store.has_blob(repository, layer.digest):
                with layer.path.open("rb") as handle:
                    self.store.put_blob(repository, layer.digest, handle)
            layers = [*layers, descriptor(layer_type, layer.digest, layer.size)]
        config = canonical_json(image_config(base, recipe, layer))
        config_descriptor = descriptor(base.config_media_type, config)
        self.store.put_blob(repository, config_descriptor["digest"], io.BytesIO(config))
        annotations = {}
        if base.ref is not None and base.manifest is not None:
            annotations = {
                "org.opencontainers.image.base.name": str(base.ref),
                "org.opencontainers.image.base.digest": base.manifest.digest,
            }
        manifest = Manifest.of(image_manifest(config_descriptor, layers, annotations))
        self.store.put_manifest(repository, target.tag, manifest)
        return manifest


def context_ignores(request: BuildRequest) -> IgnoreMatcher | None:
    """What ``.dockerignore`` keeps out of COPY and ADD: the files a client sends whatever it
    says (the Dockerfile, the manifest, ``.dockerignore`` itself) stay out when it names
    them, as with ``docker build``."""
    try:
        patterns = read_patterns(request.context)
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"cannot read the build context's .dockerignore: {err}") from None
    return IgnoreMatcher(patterns, send_dockerignore=False) if patterns else None


def image_config(base: BaseImage, recipe: Recipe, layer: Layer | None) -> dict[str, Any]:
    """The image's config: the base's, with the Dockerfile's config, the new layer's diff_id
    and a history entry per instruction (one not empty: the layer), all dated EPOCH."""
    config = {k: v for k, v in base.config.items() if k not in _BASE_ONLY}
    config.setdefault("architecture", host_architecture())
    config.setdefault("os", "linux")
    config["created"] = EPOCH
    config["config"] = recipe.config
    rootfs = dict(config.get("rootfs") or {"type": "layers", "diff_ids": []})
    history = list(config.get("history") or [])
    history += [{"created": EPOCH, "created_by": h, "empty_layer": True} for h in recipe.history]
    if layer is not None:
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), layer.diff_id]
        lines = ", ".join(str(step.line) for step in recipe.copies) or "none"
        history.append(
            {
                "created": EPOCH,
                "created_by": f"relman local builder: the build context as one layer "
                f"(COPY/ADD on lines {lines}; WORKDIR directories)",
            }
        )
    config["rootfs"] = rootfs
    config["history"] = history
    return config
