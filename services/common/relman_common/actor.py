"""Who is making the current request, as a context variable set by the RPC layer."""

from __future__ import annotations

import contextvars

_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("relman_actor", default="anonymous")


def current_actor() -> str:
    return _ACTOR.get()


def set_actor(name: str) -> contextvars.Token[str]:
    return _ACTOR.set(name)
