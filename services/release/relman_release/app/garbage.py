"""The garbage list's use-cases: what is waiting to be deleted, whether it may go now, and
forgetting it once it went."""

from __future__ import annotations

from collections.abc import Sequence

from relman_release.ports import UnitOfWork


def waiting(uow: UnitOfWork, limit: int) -> list[tuple[int, str, str]]:
    """Up to ``limit`` (seq, kind, ref), oldest first, each with whether a build names it."""
    with uow.read() as repo:
        return repo.list_garbage(limit)


def still_used(uow: UnitOfWork, kind: str, ref: str) -> bool:
    """Whether a build names it again (a new build of the same source, the same image)."""
    with uow.read() as repo:
        return repo.in_use(kind, ref)


def forget(uow: UnitOfWork, seqs: Sequence[int]) -> None:
    with uow.write() as repo:
        repo.forget_garbage(seqs)
