"""What builds need besides the database, made once from the settings: the source store,
the image store, the builder, and a directory for their temporary files."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from relman_common.settings import (
    BUILD_CONCURRENCY,
    BUILD_HEARTBEAT_TTL,
    SOURCE_MAX_BYTES,
    SOURCE_MAX_ENTRIES,
)

from relman_release.builds.archive import Limits
from relman_release.builds.sources import FileSourceStore, SourceStore
from relman_release.images import Builder, ImageStore, get_builder, open_store, parse_registry
from relman_release.images.reference import Registry


@dataclass(frozen=True)
class BuildConfig:
    """The build settings of one Release service (see relman_common.settings)."""

    data_dir: Path
    builder: str = "local"
    registry: str = ""
    registry_username: str = ""
    registry_password: str = ""
    docker_host: str = ""
    concurrency: int = BUILD_CONCURRENCY.default
    heartbeat_ttl: float = BUILD_HEARTBEAT_TTL.default
    limits: Limits = field(
        default_factory=lambda: Limits(SOURCE_MAX_BYTES.default, SOURCE_MAX_ENTRIES.default)
    )

    @classmethod
    def from_args(cls, args: argparse.Namespace, registry_password: str) -> BuildConfig:
        """From the Release service's parsed flags (the password is a variable only)."""
        return cls(
            data_dir=Path(args.data_dir),
            builder=args.builder,
            registry=args.registry,
            registry_username=args.registry_username,
            registry_password=registry_password,
            docker_host=args.docker_host,
            concurrency=args.build_concurrency,
            heartbeat_ttl=args.build_heartbeat_ttl,
            limits=Limits(args.source_max_bytes, args.source_max_entries),
        )


@dataclass(frozen=True)
class Workshop:
    sources: SourceStore
    images: ImageStore
    builder: Builder
    # Where images are pushed (None: the OCI layout in the data dir).
    registry: Registry | None
    # Temporary directories of builds, exports and imports (<data-dir>/builds).
    work_dir: Path
    limits: Limits


def open_workshop(config: BuildConfig) -> Workshop:
    """The stores and the builder ``config`` names; a setting that cannot work (an unknown
    builder, a malformed registry, the docker builder without one) raises here, at start."""
    registry = parse_registry(config.registry) if config.registry else None
    credentials = (config.registry_username, config.registry_password)
    builder = get_builder(
        config.builder,
        registry=config.registry or None,
        registry_username=credentials[0],
        registry_password=credentials[1],
        data_dir=config.data_dir,
        docker_host=config.docker_host or None,
    )
    work_dir = config.data_dir / "builds"
    work_dir.mkdir(parents=True, exist_ok=True)
    return Workshop(
        sources=FileSourceStore(config.data_dir / "sources", config.limits),
        images=open_store(config.registry or None, config.data_dir, *credentials),
        builder=builder,
        registry=registry,
        work_dir=work_dir,
        limits=config.limits,
    )
