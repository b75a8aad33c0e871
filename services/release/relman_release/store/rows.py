"""Database rows to domain objects (by :mod:`relman_common.records`: a column holds the field
of its name), and the outcome column's text."""

from __future__ import annotations

from typing import Any

from relman_common.lifecycle import Outcome
from relman_common.records import from_row
from sqlalchemy import Row

from relman_release.domain.model import App, Build, LogLine, Release
from relman_release.domain.tokens import ApiToken
from relman_release.store.codec import decode_images


def app(row: Row[Any]) -> App:
    return from_row(App, row._mapping)


def build(row: Row[Any], app: str) -> Build:
    return from_row(Build, row._mapping, app=app, images=decode_images(row.images))


def log_line(row: Row[Any]) -> LogLine:
    return from_row(LogLine, row._mapping)


def release(row: Row[Any], app: str, env: dict[str, str]) -> Release:
    return from_row(Release, row._mapping, app=app, env=env)


def outcome_text(outcome: Outcome | None) -> str:
    return outcome.value if outcome is not None else ""


def token(row: Row[Any]) -> ApiToken:
    return from_row(ApiToken, row._mapping)
