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

from collections.abc import Sequence

import grpc
from relman.v1 import auth_pb2, auth_pb2_grpc  # type: ignore[import-not-found]

from relman_common.auth import CachedAuthenticator, Principal, call_metadata, require_token
from relman_common.errors import Unavailable
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

    def __init__(
        self,
        channel: grpc.aio.Channel | Sequence[grpc.aio.Channel],
        timeout: float = WHOAMI_TIMEOUT_SECONDS,
    ) -> None:
        channels = [channel] if isinstance(channel, grpc.aio.Channel) else list(channel)
        self._stubs = [auth_pb2_grpc.TokenServiceStub(c) for c in channels]
        self._next = 0
        self._timeout = timeout

    async def __call__(self, token: str | None) -> Principal:
        """Asks one Release service; one that is unavailable is passed over for the next
        (each is asked at most once per call)."""
        secret = require_token(token)
        for attempt in range(len(self._stubs)):
            index = self._next
            stub = self._stubs[index % len(self._stubs)]
            try:
                me = await stub.WhoAmI(
                    auth_pb2.WhoAmIRequest(), metadata=call_metadata(secret), timeout=self._timeout
                )
                break
            except grpc.aio.AioRpcError as err:
                error = error_from_rpc(err)
                if not isinstance(error, Unavailable) or attempt == len(self._stubs) - 1:
                    raise error from None
                if self._next == index:
                    self._next += 1
        # The kind's word ("service"...), as the Release service's own principals have it; an
        # unknown kind (a newer peer) is "": no admin or service rights.
        return Principal(name=str(me.name), kind=word(TokenKind, me.kind))


def remote_authenticator(
    channel: grpc.aio.Channel | Sequence[grpc.aio.Channel],
) -> CachedAuthenticator:
    """Verifies tokens with the Release service reached over ``channel`` (or any of several
    channels to its replicas), remembering a successful answer for ``VERIFY_CACHE_SECONDS``
    (2 s)."""
    return CachedAuthenticator(WhoAmIAuthenticator(channel))
