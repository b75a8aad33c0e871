"""The manifest's value rules, one function per kind of field: each takes the mapping that
holds the field and the field's path for the message, and returns a model value or raises
``manifest line N: <path>: <reason>``."""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from relman_common.manifest.lines import Map, Seq, manifest_error
from relman_common.manifest.model import HTTP, BuildSpec, Health, Port, Scale
from relman_common.vocabulary import clip

BUILD_KEYS = ("manifest", "path")
HEALTH_KEYS = ("grace", "interval", "path", "timeout")
SCALE_KEYS = ("count", "cpu", "memory")

_PORT = re.compile(r"(?:(http|https):)?([0-9]+)")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
PORT_RULE = "must be a port number from 1 to 65535 (optionally http: or https:)"


def check_keys(mapping: Map, path: str, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{clip(key)}" if path else clip(key)
            raise manifest_error(
                mapping.key_lines[key],
                f"unknown key {where} (expected one of: {', '.join(allowed)})",
            )


def mapping(parent: Map, key: str, path: str, keys: tuple[str, ...]) -> Map:
    where = f"{path}.{key}" if path else key
    value = parent[key]
    if not isinstance(value, Map):
        raise manifest_error(parent.value_lines[key], f"{where} must be a mapping")
    check_keys(value, where, keys)
    return value


def text(parent: Map, key: str, path: str) -> str:
    value = parent[key]
    if not isinstance(value, str) or not value.strip():
        raise manifest_error(parent.value_lines[key], f"{path}.{key} must be non-empty text")
    return value


def integer(parent: Map, key: str, path: str, minimum: int, maximum: int | None = None) -> int:
    value = parent[key]
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        if maximum is not None:
            reason = f"must be an integer from {minimum} to {maximum}"
        elif minimum == 1:
            reason = "must be a positive integer"
        else:
            reason = "must be a non-negative integer"
        raise manifest_error(parent.value_lines[key], f"{path}.{key} {reason}")
    assert isinstance(value, int)
    return value


def build(spec: Map, path: str) -> BuildSpec:
    value = spec["build"]
    line = spec.value_lines["build"]
    if isinstance(value, str) and value.strip():
        return BuildSpec(path=inside(value, line, f"{path}.build"))
    if isinstance(value, Map):
        check_keys(value, f"{path}.build", BUILD_KEYS)
        build = BuildSpec()
        if "path" in value:
            where = f"{path}.build.path"
            build = BuildSpec(path=inside(text(value, "path", f"{path}.build"), line, where))
        if "manifest" in value:
            manifest = text(value, "manifest", f"{path}.build")
            where = f"{path}.build.manifest"
            build = BuildSpec(build.path, inside(manifest, value.value_lines["manifest"], where))
        return build
    raise manifest_error(line, f"{path}.build must be a path or a mapping")


def inside(value: str, line: int, where: str) -> str:
    """A relative path that stays inside the build context, normalised."""
    normal = posixpath.normpath(value.strip())
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise manifest_error(
            line, f"{where} must be a path inside the build context: {clip(value)}"
        )
    return normal


def command(spec: Map, key: str, path: str) -> tuple[str, ...]:
    value = spec[key]
    line = spec.value_lines[key]
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise manifest_error(line, f"{path}.{key} cannot be split into words: {err}") from None
    if isinstance(value, Seq) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise manifest_error(line, f"{path}.{key} must be text or a list of text")


def port(spec: Map, path: str) -> Port:
    value = spec["port"]
    scheme, number = HTTP, None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        match = _PORT.fullmatch(value.strip())
        if match is not None:
            scheme, number = match.group(1) or HTTP, int(match.group(2))
    if number is None or not 1 <= number <= 65535:
        raise manifest_error(spec.value_lines["port"], f"{path}.port {PORT_RULE}")
    return Port(number=number, scheme=scheme)


def ports(spec: Map, path: str) -> tuple[int, ...]:
    value = spec["ports"]
    if not isinstance(value, Seq):
        raise manifest_error(spec.value_lines["ports"], f"{path}.ports must be a list of ports")
    ports: list[int] = []
    for item, line in zip(value, value.lines, strict=True):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 65535:
            raise manifest_error(line, f"{path}.ports entries must be numbers from 1 to 65535")
        ports.append(item)
    return tuple(ports)


def health(spec: Map, path: str) -> Health:
    value = spec["health"]
    hpath = f"{path}.health"
    if isinstance(value, str):
        if not value.startswith("/"):
            raise manifest_error(
                spec.value_lines["health"], f"{hpath} must be a path starting with /"
            )
        return Health(path=value)
    if not isinstance(value, Map):
        raise manifest_error(
            spec.value_lines["health"],
            f"{hpath} must be a path or a mapping of path, grace, interval, timeout",
        )
    check_keys(value, hpath, HEALTH_KEYS)
    values: dict[str, Any] = {}
    if "path" in value:
        hp = value["path"]
        if not isinstance(hp, str) or not hp.startswith("/"):
            raise manifest_error(
                value.value_lines["path"], f"{hpath}.path must be a path starting with /"
            )
        values["path"] = hp
    for key, minimum in (("grace", 0), ("interval", 1), ("timeout", 1)):
        if key in value:
            values[key] = integer(value, key, hpath, minimum)
    return Health(**values)


def scale(spec: Map, path: str) -> Scale:
    scale = mapping(spec, "scale", path, SCALE_KEYS)
    spath = f"{path}.scale"
    count = high = 1
    if "count" in scale:
        value = scale["count"]
        match = _RANGE.fullmatch(value.strip()) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            count = high = value
        elif match is not None and 1 <= int(match.group(1)) <= int(match.group(2)):
            count, high = int(match.group(1)), int(match.group(2))
        else:
            raise manifest_error(
                scale.value_lines["count"],
                f"{spath}.count must be a positive integer or a range like 1-4",
            )
    cpu = integer(scale, "cpu", spath, 1) if "cpu" in scale else 0
    memory = integer(scale, "memory", spath, 1) if "memory" in scale else 0
    return Scale(count=count, max=high, cpu=cpu, memory=memory)
