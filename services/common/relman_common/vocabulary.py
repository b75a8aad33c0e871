"""Names, ids and limits of the whole system — the only copy.

Both services and the CLI check what people type against these rules, with the same words.
Error messages quote at most ``QUOTE_LIMIT`` characters of any input (a 100 KB name is not
sent back whole).

>>> validate_app_name("my-app")
'my-app'
>>> check_id(RELEASE, "RBCDEFGHIJK", "release_id")
'RBCDEFGHIJK'
>>> try:
...     check_id(RELEASE, "x" * 500, "release_id")
... except InvalidArgument as err:
...     print(len(str(err)) < 200, err.reason, err.field)
True INVALID_ID release_id
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Mapping, Sequence

from relman_common.errors import INVALID_ID, INVALID_NAME, InvalidArgument

# --- ids -------------------------------------------------------------------------------------

BUILD = "B"
RELEASE = "R"
DEPLOYMENT = "D"
WEBHOOK = "W"
EVENT = "E"
ID_KINDS = {
    BUILD: "build",
    RELEASE: "release",
    DEPLOYMENT: "deployment",
    WEBHOOK: "webhook",
    EVENT: "event",
}
ID_LENGTH = 11
_LETTERS = string.ascii_uppercase
_ID = re.compile(r"[A-Z]{11}")

# --- names -----------------------------------------------------------------------------------

# Apps and services: they become Kubernetes object names with suffixes.
APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
SERVICE_NAME = APP_NAME
MAX_NAME_LENGTH = 30
NAME_RULE = 'use 1 to 30 lowercase letters, digits and "-", starting with a letter'
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_KEY_RULE = "keys start with a letter or _ and hold only letters, digits and _"
# Env keys become the keys of a Kubernetes Secret, which allows at most 253 characters.
MAX_ENV_KEY_LENGTH = 253

# --- limits ----------------------------------------------------------------------------------

QUOTE_LIMIT = 100
# Names listed in one message: at most this many, in at most about this many characters.
MAX_NAMES_LISTED = 10
MAX_LISTED_CHARS = 150
MAX_DESCRIPTION = 1000
MAX_GIT_SHA = 64
MAX_ACTOR_LENGTH = 64
# A release's env must fit in one Kubernetes Secret: keys plus values at most 1 MiB.
MAX_ENV_BYTES = 1024 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
# Every server and every client: large enough for the largest release and manifest.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000

# gRPC channel and server options that apply MAX_MESSAGE_BYTES both ways.
MESSAGE_SIZE_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


def clip(value: str, limit: int = QUOTE_LIMIT) -> str:
    """An input named in a message, cut to ``limit`` characters (SPEC 10).

    >>> clip("web"), len(clip("a" * 500))
    ('web', 101)
    """
    return value if len(value) <= limit else value[:limit] + "…"


def quote(value: str, limit: int = QUOTE_LIMIT) -> str:
    """``value`` in double quotes for a message, cut to ``limit`` characters.

    >>> quote("web"), quote("a" * 120)[-6:], len(quote("\\x00" * 300))
    ('"web"', 'aaaa…"', 103)
    """
    return '"' + clip(value.replace("\x00", "\\0"), limit) + '"'


def listed(names: Sequence[str], shown: Callable[[str], str] = clip) -> str:
    """Names for a message, each as ``shown`` writes it (cut to QUOTE_LIMIT by default): as
    many as fit in about MAX_LISTED_CHARS characters (at least one, at most
    MAX_NAMES_LISTED), then how many more there are.

    >>> listed(["A", "B"]), listed([f"s{i}" for i in range(12)])[-13:]
    ('A, B', 's9 and 2 more')
    >>> text = listed(["K" * 250] * 5)
    >>> len(text), text[-10:]
    (112, 'and 4 more')
    """
    parts: list[str] = []
    size = 0
    for name in names[:MAX_NAMES_LISTED]:
        part = shown(name)
        if parts and size + len(part) > MAX_LISTED_CHARS:
            break
        parts.append(part)
        size += len(part) + 2
    more = len(names) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def new_id(prefix: str) -> str:
    """A new id with ``prefix``, drawn from a cryptographic RNG.

    >>> len(new_id(RELEASE)), new_id(RELEASE)[0]
    (11, 'R')
    """
    if prefix not in ID_KINDS:
        raise ValueError(f"id prefix must be one of {', '.join(ID_KINDS)}, got {prefix!r}")
    return prefix + "".join(secrets.choice(_LETTERS) for _ in range(ID_LENGTH - 1))


def looks_like(prefix: str, value: str) -> bool:
    """Whether ``value`` has the shape of an id of kind ``prefix``."""
    return value[:1] == prefix and _ID.fullmatch(value) is not None


def check_id(prefix: str, value: str, field: str, *, required: bool = True) -> str:
    """``value`` if it is a well-formed id of kind ``prefix`` (or empty and not required),
    else InvalidArgument naming ``field`` (reason INVALID_ID)."""
    what = ID_KINDS[prefix]
    if not value:
        if required:
            raise InvalidArgument(f"{what} id is required", reason=INVALID_ID, field=field)
        return value
    if not looks_like(prefix, value):
        raise InvalidArgument(
            f"invalid {what} id {quote(value)}: ids are {prefix} followed by 10 capital letters "
            f"(e.g. {prefix}BCDEFGHIJK)",
            reason=INVALID_ID,
            field=field,
        )
    return value


def validate_app_name(name: str, field: str = "app") -> str:
    """``name`` if it is a valid app name, else InvalidArgument (reason INVALID_NAME).

    >>> try:
    ...     validate_app_name("Web")
    ... except InvalidArgument as err:
    ...     print(err)
    invalid app name "Web": use 1 to 30 lowercase letters, digits and "-", starting with a letter
    """
    if not name:
        raise InvalidArgument("app name is required", reason=INVALID_NAME, field=field)
    if APP_NAME.fullmatch(name) is None:
        raise InvalidArgument(
            f"invalid app name {quote(name)}: {NAME_RULE}", reason=INVALID_NAME, field=field
        )
    return name


def service_name_error(name: str) -> str:
    """The reason a service name is refused, or "" when it is valid."""
    if SERVICE_NAME.fullmatch(name) is None:
        return f"invalid service name {quote(name)}: {NAME_RULE}"
    return ""


def env_key_error(key: str) -> str:
    """The reason an env key is refused, or "" when it is valid."""
    if ENV_KEY.fullmatch(key) is None:
        return f"invalid env key {quote(key)}: {ENV_KEY_RULE}"
    if len(key) > MAX_ENV_KEY_LENGTH:
        return (
            f"invalid env key {quote(key)}: keys are at most {MAX_ENV_KEY_LENGTH} characters "
            "(the longest key of a Kubernetes Secret)"
        )
    return ""


def validate_env_key(key: str, field: str = "env") -> str:
    error = env_key_error(key)
    if error:
        raise InvalidArgument(error, field=field)
    return key


def validate_env_value(key: str, value: str, field: str = "env") -> str:
    if "\x00" in value:
        raise InvalidArgument(
            f"invalid value for env key {clip(key)}: it holds a NUL character", field=field
        )
    return value


def env_size(env: Mapping[str, str]) -> int:
    """Bytes an env takes in a Kubernetes Secret: every key and UTF-8 value.

    >>> env_size({"A": "é"})
    3
    """
    return sum(len(k.encode()) + len(v.encode()) for k, v in env.items())


def check_env_size(env: Mapping[str, str], field: str = "env") -> None:
    size = env_size(env)
    if size > MAX_ENV_BYTES:
        raise InvalidArgument(
            f"the env would take {size} bytes, more than the {MAX_ENV_BYTES} bytes (1 MiB) a "
            "release's env may hold (it must fit in one Kubernetes Secret)",
            field=field,
        )


def validate_env(env: Mapping[str, str], field: str = "env") -> Mapping[str, str]:
    """Every key and value valid, and the whole small enough for a Kubernetes Secret."""
    for key, value in env.items():
        validate_env_key(key, field)
        validate_env_value(key, value, field)
    check_env_size(env, field)
    return env


def validate_text(what: str, value: str, max_length: int = MAX_DESCRIPTION, field: str = "") -> str:
    """Free text stored as given: no NUL characters, bounded length."""
    if "\x00" in value:
        raise InvalidArgument(f"invalid {what}: it holds a NUL character", field=field)
    if len(value) > max_length:
        raise InvalidArgument(f"invalid {what}: longer than {max_length} characters", field=field)
    return value


def page_limit(limit: int) -> int:
    """The page size for a requested ``limit``: 0 means the default; more than the maximum
    is the maximum.

    >>> page_limit(0), page_limit(5), page_limit(99999)
    (10, 5, 1000)
    """
    if limit < 0:
        raise InvalidArgument(f"invalid limit {limit}: use a positive number", field="limit")
    return min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
