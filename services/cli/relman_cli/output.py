"""Rendering results: tables, info blocks, progress lines, event lines, JSON.

Commands build a result (:class:`Table`, :class:`Info`, :class:`Lines`) that carries both its
text form and its JSON form; :func:`render` is the one place that writes it, as text or JSON.
Everything here is pure apart from the writes, so it is tested with plain values.

>>> rows = [["RA", "active", "x"], ["RBB", "", "y"]]
>>> print("\\n".join(table(["ID", "STATUS", "DESCRIPTION"], rows)))
ID   STATUS  DESCRIPTION
RA   active  x
RBB          y
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)

MASK = "****"


# --- plain helpers ---------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns padded to the widest cell, two spaces apart.

    The last column is not padded and no line ends in spaces.
    """
    body = [[_cell(c) for c in row] for row in rows]
    head = [_cell(h) for h in headers]
    widths = [len(h) for h in head]
    for row in body:
        if len(row) != len(head):
            raise ValueError(f"row has {len(row)} cells, table has {len(head)} columns")
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [head, *body]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + row[-1:]
        lines.append("  ".join(cells).rstrip())
    return lines


def _cell(value: str) -> str:
    return " ".join(value.splitlines()) if "\n" in value or "\r" in value else value


def info(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Key/value rows, values aligned two spaces after the widest key.

    A value with several lines continues under the value column:

    >>> print("\\n".join(info([("Id", "RA"), ("Description", "env"), ("Env", "A=1\\nB=2")])))
    Id           RA
    Description  env
    Env          A=1
                 B=2
    """
    if not rows:
        return []
    width = max(len(key) for key, _ in rows)
    lines = []
    for key, value in rows:
        parts = value.split("\n") if value else [""]
        lines.append(f"{key.ljust(width)}  {parts[0]}".rstrip())
        lines.extend((" " * (width + 2) + part).rstrip() for part in parts[1:])
    return lines


def rfc3339(when: datetime | None) -> str:
    """``2019-01-01T00:00:00Z`` (UTC, whole seconds); empty for no time."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(when: datetime | None, now: datetime) -> str:
    """How long ago ``when`` was, as people say it: ``1 minute ago``, ``2 days ago``.

    ``now`` is passed in so that tests (and a whole table) use one instant.

    >>> from datetime import timedelta
    >>> now = datetime(2019, 1, 1, tzinfo=UTC)
    >>> ago(now - timedelta(minutes=1), now), ago(now - timedelta(hours=1), now)
    ('1 minute ago', '1 hour ago')
    """
    if when is None:
        return ""
    import humanize  # only the commands that show times pay for it

    when = _aware(when)
    now = _aware(now)
    if when > now:  # a clock a little ahead of ours: not "in 2 seconds"
        when = now
    text: str = humanize.naturaltime(when, when=now)
    for article in ("a ", "an "):
        if text.startswith(article):
            return "1 " + text[len(article) :]
    return text


def elapsed(start: datetime | None, end: datetime | None) -> str:
    """A duration the way Go prints it, whole seconds: ``45s``, ``1m22s``, ``2h0m5s``."""
    if start is None or end is None:
        return ""
    seconds = max(0, int((_aware(end) - _aware(start)) // timedelta(seconds=1)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def event_line(when: datetime | None, source: str, message: str) -> str:
    """One deployment event as the seed shows it.

    >>> event_line(datetime(2019, 1, 1, 0, 0, 51, tzinfo=UTC), "system/k8s/web",
    ...            "Scaled up replica set web-745f845dc to 1")
    '2019-01-01T00:00:51Z system/k8s/web Scaled up replica set web-745f845dc to 1'
    """
    return f"{rfc3339(when)} {source} {message}"


def env_lines(env: dict[str, str], *, mask: bool = False) -> list[str]:
    """``KEY=VALUE`` lines sorted by key; values replaced by ``****`` when ``mask``."""
    return [f"{key}={MASK if mask else env[key]}" for key in sorted(env)]


def to_json(data: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, UTF-8 left as is."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- results ---------------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    data: Any = field(default_factory=list)

    def text(self) -> list[str]:
        return table(self.headers, self.rows)


@dataclass
class Info:
    rows: list[tuple[str, str]]
    data: Any = field(default_factory=dict)

    def text(self) -> list[str]:
        return info(self.rows)


@dataclass
class Lines:
    lines: list[str]
    data: Any = None

    def text(self) -> list[str]:
        return self.lines


@dataclass
class Raw:
    """Text printed exactly as it is (a manifest), adding a final newline if it lacks one."""

    body: str
    data: Any = None

    def text(self) -> list[str]:
        return self.body.removesuffix("\n").split("\n") if self.body else []


Result = Table | Info | Lines | Raw


def render(result: Result, output: str = TEXT, stream: TextIO | None = None) -> None:
    """Write ``result`` as text or JSON: the one place command results are printed."""
    stream = sys.stdout if stream is None else stream
    if output == JSON:
        stream.write(to_json(result.data) + "\n")
    else:
        for line in result.text():
            stream.write(line + "\n")
    stream.flush()


# --- progress --------------------------------------------------------------------------------


class Progress:
    """``start("Promoting R")`` … ``ok()`` → ``Promoting R... OK``.

    Human text goes to ``stream``: stdout normally, stderr under ``--id`` (``id_only``) so
    that stdout holds only the new id.
    """

    def __init__(self, stream: TextIO | None = None, *, id_only: bool = False) -> None:
        if stream is None:
            stream = sys.stderr if id_only else sys.stdout
        self.stream = stream

    def start(self, message: str) -> None:
        self._write(f"{message}... ")

    def ok(self, detail: str = "") -> None:
        self._write(f"OK, {detail}\n" if detail else "OK\n")

    def line(self, text: str) -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def warn(message: str, stream: TextIO | None = None) -> None:
    stream = sys.stderr if stream is None else stream
    stream.write(f"WARNING: {message}\n")
    stream.flush()
