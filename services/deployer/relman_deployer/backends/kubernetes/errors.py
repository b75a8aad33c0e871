"""Kubernetes API failures as the project's errors (one table), so callers never see the client.

>>> api_error(ApiException(status=422, reason="Unprocessable Entity"), "applying web")
InvalidArgument('applying web: Unprocessable Entity')
>>> type(api_error(ApiException(status=503, reason="x"), "listing pods")).__name__
'Unavailable'
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import urllib3
from kubernetes.client.rest import ApiException
from relman_common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RelmanError,
    Unauthenticated,
    Unavailable,
)

_BY_STATUS: dict[int, type[RelmanError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: FailedPrecondition,
    422: InvalidArgument,
}


def api_message(exc: ApiException) -> str:
    """The API server's own message (from its Status body), else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body)
        except (ValueError, TypeError):
            status = None
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(exc.reason or f"HTTP {exc.status}")


def api_error(exc: ApiException, what: str) -> RelmanError:
    """``exc`` (raised while doing ``what``) as a :class:`RelmanError`.

    Client errors keep their meaning; everything else (429, 5xx, no status) is
    :class:`Unavailable`: the cluster may accept the same request later.
    """
    cls = _BY_STATUS.get(int(exc.status or 0), Unavailable)
    return cls(f"{what}: {api_message(exc)}")


def connection_error(exc: BaseException, what: str) -> Unavailable:
    return Unavailable(f"{what}: cannot reach the Kubernetes API server: {exc}")


@contextlib.contextmanager
def api_call(what: str) -> Iterator[None]:
    """Turn client failures while doing ``what`` into the project's errors."""
    try:
        yield
    except ApiException as exc:
        raise api_error(exc, what) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise connection_error(exc, what) from exc


def missing(exc: ApiException) -> bool:
    return bool(exc.status == 404)
