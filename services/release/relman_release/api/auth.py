"""Verifying the bearer tokens of calls to this process against the token store."""

from __future__ import annotations

from relman_common.auth import CachedAuthenticator, Principal, require_token
from relman_common.db import DbExecutor
from relman_common.tokens import hash_token

from relman_release.app import tokens as token_services
from relman_release.ports import UnitOfWork


class StoreAuthenticator:
    """Looks the token's hash up in the store, on the DB executor (off the event loop)."""

    def __init__(self, uow: UnitOfWork, executor: DbExecutor) -> None:
        self._uow = uow
        self._executor = executor

    async def __call__(self, token: str | None) -> Principal:
        token_hash = hash_token(require_token(token))
        return await self._executor.transaction(token_services.verify_token, self._uow, token_hash)


def store_authenticator(uow: UnitOfWork, executor: DbExecutor) -> CachedAuthenticator:
    """The authenticator of the Release service: store lookups, remembered for at most
    ``VERIFY_CACHE_SECONDS`` (and forgotten at once when revoked here)."""
    return CachedAuthenticator(StoreAuthenticator(uow, executor))
