"""The one place that authenticates every request, turns project errors into gRPC status
codes with rich details, and logs one line per request.

A refused call carries, besides its status code and message, a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer (the standard place any gRPC client reads it from): an
``ErrorInfo`` with the error's stable reason (domain ``relman.dev``) and, when the error names
a request field, a ``BadRequest`` with that field violation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from relman_common import errors
from relman_common.actor import set_actor
from relman_common.auth import (
    ACTOR_METADATA,
    Authenticator,
    Principal,
    actor_for,
    bearer_token,
    metadata_value,
    set_principal,
)
from relman_common.request_ids import (
    REQUEST_ID_METADATA,
    CallRequest,
    set_request,
    validate_request_id,
)

# ACTOR_METADATA is re-exported: clients of other services import it from here.
__all__ = [
    "ACTOR_METADATA",
    "ERROR_FOR",
    "STATUS_FOR",
    "RpcInterceptor",
    "error_from_rpc",
    "status_for",
]

log = logging.getLogger("relman.rpc")

STATUS_FOR: dict[type[errors.RelmanError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

ERROR_DOMAIN = "relman.dev"
# A message longer than this is cut (inputs are quoted short already; this is a backstop).
MAX_MESSAGE_CHARS = 4000

ERROR_FOR: dict[grpc.StatusCode, type[errors.RelmanError]] = {v: k for k, v in STATUS_FOR.items()}


def status_for(err: errors.RelmanError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        code = STATUS_FOR.get(cls)  # type: ignore[arg-type]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(err: errors.RelmanError, code: grpc.StatusCode) -> grpc.Status:
    """The status of a refused call: code, message and the google.rpc details."""
    message = str(err)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    info = any_pb2.Any()
    metadata = {"field": err.field} if err.field else {}
    info.Pack(
        error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN, metadata=metadata)
    )
    details = [info]
    if err.field and isinstance(err, errors.InvalidArgument):
        bad = any_pb2.Any()
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=err.field, description=message
        )
        bad.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        details.append(bad)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def error_details(err: grpc.RpcError) -> tuple[str, str]:
    """The (reason, field) a relman service sent with a refused call; ("", "") if none."""
    try:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except Exception:  # a malformed trailer from a peer: the code and message still count
        return "", ""
    reason = field = ""
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            field = field or info.metadata.get("field", "")
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                field = bad.field_violations[0].field
    return reason, field


def error_from_rpc(err: grpc.RpcError) -> errors.RelmanError:
    """The project error for a failed call to another relman service, with its reason and
    field when the service sent them."""
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(code)  # type: ignore[attr-defined]
    reason, field = error_details(err)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable(details, reason=reason, field=field)
    return ERROR_FOR.get(code, errors.RelmanError)(details, reason=reason, field=field)


ANONYMOUS = "anonymous"

# Served to anyone: load balancers and orchestrators probe health without credentials, and
# reflection only describes the API.
OPEN_METHOD_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

Handler = Callable[..., Any]
# Any request and response types: the interceptor serves every method of a service.
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler_: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# Each kind of handler: the attribute holding it, how gRPC makes one, whether it streams
# its responses.
_HANDLER_KINDS: tuple[tuple[str, Callable[..., Handler_], bool], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)


class _Request:
    """What the log line of one request says.

    Everything is read from the context when the call begins: touching the context of a
    cancelled stream afterwards crashes grpc 1.85 (a segmentation fault in ``peer()``).
    """

    def __init__(self, method: str, context: Context) -> None:
        self.method = method
        self.start = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.actor = ANONYMOUS
        self.principal: Principal | None = None
        self.peer = str(context.peer())

    def log(self) -> None:
        elapsed_ms = (time.perf_counter() - self.start) * 1000
        via = ""
        if self.principal is not None and self.principal.name != self.actor:
            via = f" via={self.principal.name}"
        log.info(
            "rpc %s %s %.1fms actor=%s%s peer=%s",
            self.method,
            self.code.name,
            elapsed_ms,
            self.actor,
            via,
            self.peer,
        )


class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates, maps :class:`RelmanError` to status codes and logs one line per request.

    ``authenticate`` verifies the bearer token of every call (health and reflection stay
    open); None turns authentication off and takes the actor from ``x-relman-actor``. The
    verified principal is available as :func:`relman_common.auth.current_principal` and the
    actor as :func:`relman_common.actor.current_actor`. Unexpected exceptions become INTERNAL
    with the traceback logged (never sent). Log lines hold no token and no request body.
    """

    def __init__(self, authenticate: Authenticator | None = None) -> None:
        self._authenticate = authenticate
        # method -> (the service's handler, its wrapped handler): wrapping is done once per
        # method, not once per call (the wrapper keeps no per-call state).
        self._wrapped: dict[str, tuple[Handler_, Handler_]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler_ | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler_ | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    async def _begin(self, request: _Request, context: Context) -> None:
        """Sets who is calling, or raises Unauthenticated."""
        set_principal(None)
        set_actor(ANONYMOUS)
        set_request(None)
        metadata = tuple(context.invocation_metadata() or ())
        if self._authenticate is None:
            request.actor = metadata_value(metadata, ACTOR_METADATA) or ANONYMOUS
        else:
            principal = await self._authenticate(bearer_token(metadata))
            set_principal(principal)
            request.principal = principal
            request.actor = actor_for(principal, metadata)
        set_actor(request.actor)
        sent = [v for k, v in metadata if k == REQUEST_ID_METADATA and isinstance(v, str)]
        request_id = validate_request_id(sent[0] if sent else "")
        set_request(CallRequest(request.method, request_id))

    async def _fail(self, request: _Request, err: Exception, context: Context) -> NoReturn:
        if type(err).__module__.startswith("sqlalchemy"):
            # A database fault is the database being unavailable, not a bug (SPEC 10).
            from relman_common.db import domain_error

            err = domain_error(err) or err
        if isinstance(err, grpc.aio.AbortError):
            request.code = context.code() or grpc.StatusCode.UNKNOWN
            raise err
        if isinstance(err, errors.RelmanError):
            request.code = status_for(err)
            status = rich_status(err, request.code)
            await context.abort(status.code, status.details, status.trailing_metadata)
        request.code = grpc.StatusCode.INTERNAL
        log.error("%s failed", request.method, exc_info=err)
        await context.abort(request.code, "internal error (see the server log)")
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _wrap(self, handler: Handler_, method: str) -> Handler_:
        for kind, make, streams in _HANDLER_KINDS:
            inner = getattr(handler, kind)
            if inner is not None:
                wrap = self._wrap_streaming if streams else self._wrap_single
                return make(
                    wrap(inner, method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _wrap_single(self, inner: Handler, method: str) -> Handler:
        """A handler with one response (its request may be one message or a stream)."""

        async def call(request: Any, context: Context) -> Any:
            state = _Request(method, context)
            try:
                await self._begin(state, context)
                return await inner(request, context)
            except Exception as err:
                await self._fail(state, err, context)
            except BaseException:
                state.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                state.log()

        return call

    def _wrap_streaming(self, inner: Handler, method: str) -> Handler:
        """A handler that streams its responses (written as an async generator)."""

        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            state = _Request(method, context)
            try:
                await self._begin(state, context)
                async for item in inner(request, context):
                    yield item
            except Exception as err:
                await self._fail(state, err, context)
            except (asyncio.CancelledError, GeneratorExit):
                state.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                state.log()

        return call
