"""Source archives of an app: whether one is held, and what an upload must say first."""

from __future__ import annotations

from relman_common.errors import InvalidArgument
from relman_common.vocabulary import validate_app_name

from relman_release.app.lookups import app_named
from relman_release.builds.archive import check_size
from relman_release.builds.sources import SourceInfo, SourceStore, check_sha256, not_held
from relman_release.ports import UnitOfWork


def _check_app(uow: UnitOfWork, app_name: str) -> None:
    validate_app_name(app_name)
    with uow.read() as repo:
        app_named(repo, app_name)


def stat_source(uow: UnitOfWork, sources: SourceStore, app_name: str, sha256: str) -> SourceInfo:
    """The archive ``sha256`` when it is held (NotFound otherwise): no need to send it."""
    _check_app(uow, app_name)
    info = sources.stat(check_sha256(sha256))
    if info is None:
        raise not_held(sha256)
    return info


def begin_upload(
    uow: UnitOfWork, sources: SourceStore, app_name: str, sha256: str, size: int
) -> SourceInfo | None:
    """Checks an upload's header before any byte is received: the app exists, the sha256 is
    well-formed, the size within the limit. The archive when it is held already (nothing
    needs to be received)."""
    _check_app(uow, app_name)
    check_sha256(sha256)
    if size <= 0:
        raise InvalidArgument(f"invalid size {size}: an archive has bytes", field="size")
    check_size(size, sources.limits)
    return sources.stat(sha256)
