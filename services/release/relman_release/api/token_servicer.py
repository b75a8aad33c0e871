"""The TokenService servicer: protos in, token use-cases, protos out.

The caller is the principal the interceptor verified (None when authentication is off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from grpc.aio import ServicerContext as Context
from relman.v1 import auth_pb2, auth_pb2_grpc  # type: ignore[import-not-found]
from relman_common.auth import CachedAuthenticator, current_principal
from relman_common.db import DbExecutor

from relman_release import token_services
from relman_release.api import converters as cv
from relman_release.ports import UnitOfWork

T = TypeVar("T")


class TokenServicer(auth_pb2_grpc.TokenServiceServicer):  # type: ignore[misc]
    def __init__(
        self, uow: UnitOfWork, executor: DbExecutor, cache: CachedAuthenticator | None
    ) -> None:
        self._uow = uow
        self._executor = executor
        self._cache = cache

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._executor.run(fn, self._uow, current_principal(), *args)

    async def CreateToken(
        self, request: auth_pb2.CreateTokenRequest, context: Context
    ) -> auth_pb2.CreateTokenResponse:
        created = await self._run(token_services.create_token, request.name, request.kind)
        return auth_pb2.CreateTokenResponse(token=cv.token_pb(created.token), secret=created.secret)

    async def ListTokens(
        self, request: auth_pb2.ListTokensRequest, context: Context
    ) -> auth_pb2.ListTokensResponse:
        listed = await self._run(token_services.list_tokens)
        return auth_pb2.ListTokensResponse(tokens=[cv.token_pb(t) for t in listed])

    async def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: Context
    ) -> auth_pb2.Token:
        token = await self._run(token_services.revoke_token, request.name)
        if self._cache is not None:
            self._cache.forget(token.name)
        return cv.token_pb(token)

    async def WhoAmI(self, request: auth_pb2.WhoAmIRequest, context: Context) -> auth_pb2.Token:
        return cv.token_pb(await self._run(token_services.who_am_i))
