"""Validation of the names, keys and ids people type."""

from __future__ import annotations

import re

from relman_common.errors import InvalidArgument

APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVICE_NAME = APP_NAME

MAX_DESCRIPTION = 1000


def validate_app_name(name: str) -> str:
    """``name`` if it is a valid app name, else InvalidArgument.

    >>> validate_app_name("my-app")
    'my-app'
    """
    if not name:
        raise InvalidArgument("app name is required")
    if APP_NAME.fullmatch(name) is None:
        raise InvalidArgument(
            f'invalid app name "{name}": use 1 to 30 lowercase letters, digits and "-", '
            "starting with a letter"
        )
    return name


def validate_env_key(key: str) -> str:
    if ENV_KEY.fullmatch(key) is None:
        raise InvalidArgument(
            f'invalid env key "{key}": keys start with a letter or _ and hold only letters, '
            "digits and _"
        )
    return key


def validate_env_value(key: str, value: str) -> str:
    if "\x00" in value:
        raise InvalidArgument(f"invalid value for env key {key}: it holds a NUL character")
    return value


def validate_env(env: dict[str, str]) -> dict[str, str]:
    for key, value in env.items():
        validate_env_key(key)
        validate_env_value(key, value)
    return env


def validate_text(what: str, value: str, max_length: int = MAX_DESCRIPTION) -> str:
    """Free text stored as given: no NUL characters, bounded length."""
    if "\x00" in value:
        raise InvalidArgument(f"invalid {what}: it holds a NUL character")
    if len(value) > max_length:
        raise InvalidArgument(f"invalid {what}: longer than {max_length} characters")
    return value


def require_id(what: str, value: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} id is required")
    return value
