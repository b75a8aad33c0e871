"""Deployment backends behind one small interface (:mod:`relman_deployer.backends.base`).

:func:`get_backend` imports a backend's module only when it is asked for, so the Kubernetes
client library is never loaded by a Deployer that runs the ``sim`` backend.
"""

from __future__ import annotations

import importlib
from typing import Any

from relman_common.errors import InvalidArgument

from relman_deployer.backends.base import Backend

BACKENDS = ("sim", "kubernetes")


def get_backend(name: str, **options: Any) -> Backend:
    """A new backend by name, built with ``options`` (its constructor's keyword arguments).

    ``sim`` is :class:`relman_deployer.backends.sim.SimBackend`; ``kubernetes`` is the
    ``KubernetesBackend`` class of :mod:`relman_deployer.backends.kubernetes`.
    """
    if name == "sim":
        from relman_deployer.backends.sim import SimBackend

        return SimBackend(**options)
    if name == "kubernetes":
        module = importlib.import_module("relman_deployer.backends.kubernetes")
        backend: Backend = module.KubernetesBackend(**options)
        return backend
    raise InvalidArgument(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "get_backend"]
