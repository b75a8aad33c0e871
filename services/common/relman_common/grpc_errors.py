"""The one place that turns project errors into gRPC status codes, and logs every request."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from relman_common import errors
from relman_common.actor import set_actor

log = logging.getLogger("relman.rpc")

STATUS_FOR: dict[type[errors.RelmanError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

ERROR_FOR: dict[grpc.StatusCode, type[errors.RelmanError]] = {v: k for k, v in STATUS_FOR.items()}


def status_for(err: errors.RelmanError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        code = STATUS_FOR.get(cls)  # type: ignore[arg-type]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def error_from_rpc(err: grpc.RpcError) -> errors.RelmanError:
    """The project error for a failed call to another relman service."""
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(code)  # type: ignore[attr-defined]
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return errors.Unavailable(details)
    return ERROR_FOR.get(code, errors.RelmanError)(details)


ACTOR_METADATA = "x-relman-actor"


def _actor(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_METADATA and value:
            return str(value)[:64]
    return "anonymous"


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps :class:`RelmanError` to status codes and logs one line per request.

    Unexpected exceptions become INTERNAL with the traceback logged (never sent).
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        if method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                code = grpc.StatusCode.OK
                set_actor(_actor(context))
                try:
                    return await inner_uu(request, context)
                except errors.RelmanError as err:
                    code = status_for(err)
                    await context.abort(code, str(err))
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception:
                    code = grpc.StatusCode.INTERNAL
                    log.exception("%s failed", method)
                    await context.abort(code, "internal error (see the server log)")
                finally:
                    _log_request(method, code, start, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                start = time.perf_counter()
                code = grpc.StatusCode.OK
                set_actor(_actor(context))
                try:
                    async for item in inner_us(request, context):
                        yield item
                except errors.RelmanError as err:
                    code = status_for(err)
                    await context.abort(code, str(err))
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception:
                    code = grpc.StatusCode.INTERNAL
                    log.exception("%s failed", method)
                    await context.abort(code, "internal error (see the server log)")
                finally:
                    _log_request(method, code, start, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _log_request(
    method: str, code: grpc.StatusCode, start: float, context: grpc.aio.ServicerContext
) -> None:
    elapsed_ms = (time.perf_counter() - start) * 1000
    log.info(
        "rpc %s %s %.1fms actor=%s peer=%s",
        method,
        code.name,
        elapsed_ms,
        _actor(context),
        context.peer(),
    )
