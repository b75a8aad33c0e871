"""Verifying tokens through the Release service's TokenService, for other relman services.

The Deployer serves users too: it checks the token a user sent by calling ``WhoAmI`` with that
token, and remembers the answer briefly::

    channel = grpc.aio.insecure_channel(release_addr)       # or secure_channel(..., tls)
    authenticate = remote_authenticator(channel)            # cached for 2 s
    Service(addr, register, names, authenticate=authenticate)

Its own calls to the Release service carry the Deployer's service token and the user it acts
for (:func:`relman_common.auth.call_metadata`).
"""

from __future__ import annotations

import grpc
from relman.v1 import auth_pb2, auth_pb2_grpc  # type: ignore[import-not-found]

from relman_common.auth import CachedAuthenticator, Principal, call_metadata, require_token
from relman_common.grpc_errors import error_from_rpc
from relman_common.lifecycle import TokenKind
from relman_common.pb_enums import word

WHOAMI_TIMEOUT_SECONDS = 5.0


class WhoAmIAuthenticator:
    """Asks the TokenService who holds a token: its principal, or Unauthenticated.

    When the Release service cannot be reached the call fails with Unavailable (the caller
    should retry), never with Unauthenticated; its other refusals pass through (e.g.
    FailedPrecondition when it runs without authentication).
    """

    def __init__(self, channel: grpc.aio.Channel, timeout: float = WHOAMI_TIMEOUT_SECONDS) -> None:
        self._stub = auth_pb2_grpc.TokenServiceStub(channel)
        self._timeout = timeout

    async def __call__(self, token: str | None) -> Principal:
        secret = require_token(token)
        try:
            me = await self._stub.WhoAmI(
                auth_pb2.WhoAmIRequest(), metadata=call_metadata(secret), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from None
        # The kind's word ("service"...), as the Release service's own principals have it; an
        # unknown kind (a newer peer) is "": no admin or service rights.
        return Principal(name=str(me.name), kind=word(TokenKind, me.kind))


def remote_authenticator(channel: grpc.aio.Channel) -> CachedAuthenticator:
    """Verifies tokens with the Release service reached over ``channel``, remembering a
    successful answer for ``VERIFY_CACHE_SECONDS`` (2 s)."""
    return CachedAuthenticator(WhoAmIAuthenticator(channel))
