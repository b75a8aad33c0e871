"""What the use-cases return besides domain objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from relman_release.domain.env import EnvDiff
from relman_release.domain.model import Build, Release

T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a listing and the token of the next page ("" at the end)."""

    items: list[T]
    next_page_token: str


@dataclass(frozen=True)
class ImportedBuild:
    build: Build
    release: Release
    warning: str = ""


@dataclass(frozen=True)
class EnvChanged:
    changed: bool
    release: Release | None
    description: str
    warning: str = ""


@dataclass(frozen=True)
class EnvView:
    env: Mapping[str, str]
    release_id: str


@dataclass(frozen=True)
class ReleaseDiff:
    from_id: str
    to_id: str
    from_build_id: str
    to_build_id: str
    env: EnvDiff

    @property
    def build_changed(self) -> bool:
        return self.from_build_id != self.to_build_id


@dataclass(frozen=True)
class Reported:
    """After a deployment report: whether it was about the current deployment, and its
    release as it is now."""

    current: bool
    release: Release
