"""The one manifest parser (SPEC 2): YAML text to :class:`~.model.Manifest`, or an error that
names the line, the path and the reason.

>>> m = parse_manifest("services:\\n  web:\\n    build: .\\n    port: https:5443\\n")
>>> m.services[0].port
Port(number=5443, scheme='https')
>>> try:
...     parse_manifest("services:\\n  web:\\n    image: x\\n    scale: {count: 0}\\n")
... except InvalidArgument as err:
...     print(err)
manifest line 4: services.web.scale.count must be a positive integer or a range like 1-4
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from relman_common.errors import INVALID_MANIFEST, InvalidArgument
from relman_common.manifest.lines import Map, Seq, load_with_lines, manifest_error
from relman_common.manifest.model import (
    HTTP,
    BuildSpec,
    EnvSpec,
    Health,
    Manifest,
    Port,
    ReleaseCommand,
    Scale,
    Service,
)
from relman_common.vocabulary import (
    MAX_MANIFEST_BYTES,
    QUOTE_LIMIT,
    env_key_error,
    service_name_error,
)

TOP_KEYS = ("environment", "release", "services")
SERVICE_KEYS = (
    "build",
    "command",
    "deployment",
    "environment",
    "health",
    "image",
    "internal",
    "port",
    "ports",
    "scale",
    "termination",
)
BUILD_KEYS = ("manifest", "path")
HEALTH_KEYS = ("grace", "interval", "path", "timeout")
SCALE_KEYS = ("count", "cpu", "memory")
DEPLOYMENT_KEYS = ("maximum", "minimum")
TERMINATION_KEYS = ("grace",)
RELEASE_KEYS = ("command", "service", "timeout")

_PORT = re.compile(r"(?:(http|https):)?([0-9]+)")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
PORT_RULE = "must be a port number from 1 to 65535 (optionally http: or https:)"


def parse_manifest(text: str) -> Manifest:
    """The manifest in ``text``. An empty text is an empty manifest (no services), which the
    Deployer refuses to promote."""
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(
            f"manifest is larger than {MAX_MANIFEST_BYTES} bytes",
            reason=INVALID_MANIFEST,
            field="manifest",
        )
    if "\x00" in text:
        raise InvalidArgument(
            "manifest holds a NUL character", reason=INVALID_MANIFEST, field="manifest"
        )
    doc = load_with_lines(text)
    if doc is None:
        return Manifest()
    if not isinstance(doc, Map):
        raise manifest_error(1, "the manifest must be a mapping (with a services key)")
    _check_keys(doc, "", TOP_KEYS)
    environment = _environment(doc, "environment", "") if "environment" in doc else ()
    services: list[Service] = []
    raw = doc.get("services")
    if raw is not None:
        if not isinstance(raw, Map):
            raise manifest_error(
                doc.value_lines["services"], "services must be a mapping of service names"
            )
        services = [_service(raw, name, spec, environment) for name, spec in raw.items()]
    release = _release(doc, services) if "release" in doc else None
    return Manifest(environment=environment, services=tuple(services), release=release)


def _cut(text: str) -> str:
    """An input named in a message, cut to QUOTE_LIMIT characters (SPEC 10)."""
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "…"


def _check_keys(mapping: Map, path: str, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{_cut(key)}" if path else _cut(key)
            raise manifest_error(
                mapping.key_lines[key],
                f"unknown key {where} (expected one of: {', '.join(allowed)})",
            )


def _mapping(parent: Map, key: str, path: str, keys: tuple[str, ...]) -> Map:
    where = f"{path}.{key}" if path else key
    value = parent[key]
    if not isinstance(value, Map):
        raise manifest_error(parent.value_lines[key], f"{where} must be a mapping")
    _check_keys(value, where, keys)
    return value


def _text(parent: Map, key: str, path: str) -> str:
    value = parent[key]
    if not isinstance(value, str) or not value.strip():
        raise manifest_error(parent.value_lines[key], f"{path}.{key} must be non-empty text")
    return value


def _int(parent: Map, key: str, path: str, minimum: int, maximum: int | None = None) -> int:
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


def _service(parent: Map, name: str, spec: Any, app_env: tuple[EnvSpec, ...]) -> Service:
    path = f"services.{name}"
    line = parent.key_lines[name]
    error = service_name_error(name)
    if error:
        raise manifest_error(line, error)
    if spec is None:
        spec = Map(line)
    if not isinstance(spec, Map):
        raise manifest_error(parent.value_lines[name], f"{path} must be a mapping")
    _check_keys(spec, path, SERVICE_KEYS)
    values: dict[str, Any] = {"name": name}
    if "image" in spec:
        values["image"] = _text(spec, "image", path)
    if "build" in spec:
        values["build"] = _build(spec, path)
    if "command" in spec:
        values["command"] = _command(spec, "command", path)
    if "port" in spec:
        values["port"] = _port(spec, path)
    if "ports" in spec:
        values["ports"] = _ports(spec, path)
    if "health" in spec:
        values["health"] = _health(spec, path)
    if "scale" in spec:
        values["scale"] = _scale(spec, path)
    if "deployment" in spec:
        deployment = _mapping(spec, "deployment", path, DEPLOYMENT_KEYS)
        dpath = f"{path}.deployment"
        if "minimum" in deployment:
            values["minimum"] = _int(deployment, "minimum", dpath, 0, 100)
        if "maximum" in deployment:
            values["maximum"] = _int(deployment, "maximum", dpath, 100, 1000)
    if "termination" in spec:
        termination = _mapping(spec, "termination", path, TERMINATION_KEYS)
        if "grace" in termination:
            values["termination_grace"] = _int(termination, "grace", f"{path}.termination", 0)
    if "internal" in spec:
        if not isinstance(spec["internal"], bool):
            raise manifest_error(
                spec.value_lines["internal"], f"{path}.internal must be true or false"
            )
        values["internal"] = spec["internal"]
    own = _environment(spec, "environment", path) if "environment" in spec else ()
    own_keys = {e.key for e in own}
    values["environment"] = tuple(e for e in app_env if e.key not in own_keys) + own
    return Service(**values)


def _build(spec: Map, path: str) -> BuildSpec:
    value = spec["build"]
    line = spec.value_lines["build"]
    if isinstance(value, str) and value.strip():
        return BuildSpec(path=_inside(value, line, f"{path}.build"))
    if isinstance(value, Map):
        _check_keys(value, f"{path}.build", BUILD_KEYS)
        build = BuildSpec()
        if "path" in value:
            where = f"{path}.build.path"
            build = BuildSpec(path=_inside(_text(value, "path", f"{path}.build"), line, where))
        if "manifest" in value:
            manifest = _text(value, "manifest", f"{path}.build")
            where = f"{path}.build.manifest"
            build = BuildSpec(build.path, _inside(manifest, value.value_lines["manifest"], where))
        return build
    raise manifest_error(line, f"{path}.build must be a path or a mapping")


def _inside(value: str, line: int, where: str) -> str:
    """A relative path that stays inside the build context, normalised."""
    normal = posixpath.normpath(value.strip())
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise manifest_error(
            line, f"{where} must be a path inside the build context: {_cut(value)}"
        )
    return normal


def _command(spec: Map, key: str, path: str) -> tuple[str, ...]:
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


def _port(spec: Map, path: str) -> Port:
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


def _ports(spec: Map, path: str) -> tuple[int, ...]:
    value = spec["ports"]
    if not isinstance(value, Seq):
        raise manifest_error(spec.value_lines["ports"], f"{path}.ports must be a list of ports")
    ports: list[int] = []
    for item, line in zip(value, value.lines, strict=True):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 65535:
            raise manifest_error(line, f"{path}.ports entries must be numbers from 1 to 65535")
        ports.append(item)
    return tuple(ports)


def _health(spec: Map, path: str) -> Health:
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
    _check_keys(value, hpath, HEALTH_KEYS)
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
            values[key] = _int(value, key, hpath, minimum)
    return Health(**values)


def _scale(spec: Map, path: str) -> Scale:
    scale = _mapping(spec, "scale", path, SCALE_KEYS)
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
    cpu = _int(scale, "cpu", spath, 1) if "cpu" in scale else 0
    memory = _int(scale, "memory", spath, 1) if "memory" in scale else 0
    return Scale(count=count, max=high, cpu=cpu, memory=memory)


def _environment(parent: Map, key: str, path: str) -> tuple[EnvSpec, ...]:
    value = parent[key]
    where = f"{path}.{key}" if path else key
    if value is None:
        return ()
    if not isinstance(value, Seq):
        raise manifest_error(
            parent.value_lines[key], f"{where} must be a list of KEY or KEY=default"
        )
    specs: list[EnvSpec] = []
    for item, line in zip(value, value.lines, strict=True):
        if not isinstance(item, str):
            raise manifest_error(line, f"{where} entries must be KEY or KEY=default")
        name, sep, default = item.partition("=")
        error = env_key_error(name)
        if error:
            raise manifest_error(line, f"{where}: {error}")
        specs.append(EnvSpec(key=name, default=default if sep else None))
    return tuple(specs)


def _release(doc: Map, services: list[Service]) -> ReleaseCommand:
    line = doc.key_lines["release"]
    block = _mapping(doc, "release", "", RELEASE_KEYS)
    if not services:
        raise manifest_error(line, "release: a release command needs a service to run it")
    if "command" not in block:
        raise manifest_error(line, "release.command is required")
    command = _command(block, "command", "release")
    if not command:
        raise manifest_error(block.value_lines["command"], "release.command must not be empty")
    service = services[0].name
    if "service" in block:
        service = _text(block, "service", "release")
        if service not in {s.name for s in services}:
            raise manifest_error(
                block.value_lines["service"],
                f"release.service: no service named {_cut(service)} "
                f"(expected one of: {', '.join(s.name for s in services)})",
            )
    timeout = _int(block, "timeout", "release", 1) if "timeout" in block else None
    if timeout is None:
        return ReleaseCommand(command=command, service=service)
    return ReleaseCommand(command=command, service=service, timeout=timeout)
