"""Apps, builds and releases as plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

BUILD_COMPLETE = "complete"


@dataclass(frozen=True)
class App:
    name: str
    created: datetime
    actor: str
    # Empty when nothing was ever promoted.
    active_release_id: str = ""
    # Empty when the app has no release yet.
    latest_release_id: str = ""


@dataclass(frozen=True)
class Build:
    id: str
    app: str
    manifest: str
    images: Mapping[str, str]
    description: str
    git_sha: str
    status: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    actor: str


@dataclass(frozen=True)
class Release:
    id: str
    app: str
    # Empty only for an app's very first env-only release.
    build_id: str
    env: Mapping[str, str]
    description: str
    created: datetime
    actor: str
    last_deployment_id: str = ""
    last_deployment_outcome: str = ""
    # Derived for display ("active", "promoting", "failed" or ""); see composition.release_status.
    status: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, newest first, and the cursor of the next page (None at the end)."""

    items: list[T]
    next_cursor: int | None = None


@dataclass(frozen=True)
class Deployable:
    """What the Deployer needs to roll a release out."""

    release: Release
    build: Build | None
    active_release: Release | None
