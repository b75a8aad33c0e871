"""One build's work, in its own thread: unpack the source into a temporary directory, build
one image per distinct build path and Dockerfile through the builder, and answer with the
image of every service. The temporary directory is removed whatever happens."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from relman_common.manifest import parse_manifest

from relman_release.builds.contents import unpack
from relman_release.builds.workshop import Workshop
from relman_release.domain.build_plan import build_plan
from relman_release.domain.model import Build
from relman_release.images import BuildRequest, LogFn, image_name


class Interrupted(Exception):
    """The service is stopping: the build ends at its next log line."""


def work_dir_of(workshop: Workshop, build_id: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{build_id}-", dir=workshop.work_dir))


def build_images(
    workshop: Workshop, build: Build, log: LogFn, stop: threading.Event
) -> dict[str, str]:
    """The images of ``build``'s services: built ones by digest (``repo@sha256:...``), the
    others' ``image:`` as the manifest names it. Raises the builder's errors, or Interrupted
    once ``stop`` is set."""

    def checked(line: str) -> None:
        if stop.is_set():
            raise Interrupted
        log(line)

    manifest = parse_manifest(build.manifest)
    images = {s.name: s.image for s in manifest.services if s.build is None and s.image}
    plan = build_plan(manifest)
    if not plan:
        checked("Nothing to build: every service names its image")
        return images
    directory = work_dir_of(workshop, build.id)
    try:
        checked(f"Unpacking source {build.source_sha256[:12]}")
        with workshop.sources.open(build.source_sha256) as raw:
            unpack(raw, directory / "source")
        for (path, dockerfile), services in plan.items():
            checked(f"Building: {', '.join(services)}")
            request = BuildRequest(
                context=directory / "source" / path,
                image=image_name(workshop.registry, build.app, services[0], build.id),
                dockerfile=dockerfile,
                no_cache=build.no_cache,
            )
            built = workshop.builder.build(request, checked)
            images.update(dict.fromkeys(services, built.pinned))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return images
