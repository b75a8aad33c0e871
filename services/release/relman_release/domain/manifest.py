"""The manifest: the subset of convox.yml relman understands (SPEC 2).

Parsing keeps the line of every key and value, so each error names the line and the reason:

>>> try:
...     parse_manifest("services:\\n  web:\\n    image: x\\n    scale: {count: 0}\\n")
... except InvalidArgument as err:
...     print(err)
manifest line 4: services.web.scale.count must be a positive integer
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from relman_common.errors import InvalidArgument

from relman_release.domain.names import ENV_KEY, SERVICE_NAME

MAX_MANIFEST_BYTES = 1024 * 1024

TOP_KEYS = ("environment", "services")
SERVICE_KEYS = ("build", "command", "deployment", "environment", "health", "image", "port", "scale")
HEALTH_KEYS = ("grace", "interval", "path", "timeout")
SCALE_KEYS = ("count",)
DEPLOYMENT_KEYS = ("maximum", "minimum")
BUILD_KEYS = ("manifest", "path")

_PORT = re.compile(r"(?:(http|https):)?([0-9]+)")


@dataclass(frozen=True)
class EnvSpec:
    """An ``environment:`` entry: ``KEY`` (required) or ``KEY=default``."""

    key: str
    default: str | None = None


@dataclass(frozen=True)
class Health:
    path: str = "/"
    grace: int = 5
    interval: int = 5
    timeout: int = 4


@dataclass(frozen=True)
class Service:
    name: str
    image: str = ""
    build: str = ""
    command: str | list[str] = ""
    port: int | None = None
    port_scheme: str = "http"
    health: Health = field(default_factory=Health)
    count: int = 1
    minimum: int = 50
    maximum: int = 200
    environment: list[EnvSpec] = field(default_factory=list)

    @property
    def needs_built_image(self) -> bool:
        """A service that uses ``build:`` or names no ``image:`` runs the build's image."""
        return bool(self.build) or not self.image


@dataclass(frozen=True)
class Manifest:
    environment: list[EnvSpec] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.services


def _error(line: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"manifest line {line}: {message}")


class _Map(dict[str, Any]):
    """A mapping that remembers the line of each key and of each value (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}
        self.value_lines: dict[str, int] = {}


class _Seq(list[Any]):
    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise _error(key_line, "keys must be plain text")
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise _error(key_line, f'duplicate key "{key}"')
        result[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
        result.key_lines[key] = key_line
        result.value_lines[key] = value_node.start_mark.line + 1
    return result


def _construct_seq(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(node.start_mark.line + 1)
    for item in node.value:
        value = loader.construct_object(item, deep=True)  # type: ignore[no-untyped-call]
        result.append(value)
        result.lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse_manifest(text: str) -> Manifest:
    """The manifest in ``text``, or InvalidArgument naming the line and the reason.

    An empty text is an empty manifest (no services); the Deployer refuses to promote it.
    """
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    if "\x00" in text:
        raise InvalidArgument("manifest holds a NUL character")
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = err.problem or err.context or "invalid YAML"
        raise _error(line, f"invalid YAML: {reason}") from None
    except yaml.YAMLError as err:
        raise InvalidArgument(f"manifest is not valid YAML: {err}") from None
    if doc is None:
        return Manifest()
    if not isinstance(doc, _Map):
        raise _error(1, "the manifest must be a mapping (with a services key)")
    _check_keys(doc, "", TOP_KEYS)
    environment = _environment(doc, "environment") if "environment" in doc else []
    services: dict[str, Service] = {}
    if "services" in doc and doc["services"] is not None:
        raw = doc["services"]
        if not isinstance(raw, _Map):
            raise _error(doc.value_lines["services"], "services must be a mapping of service names")
        for name, spec in raw.items():
            services[name] = _service(raw, name, spec)
    return Manifest(environment=environment, services=services)


def _check_keys(mapping: _Map, path: str, allowed: tuple[str, ...]) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise _error(
                mapping.key_lines[key],
                f"unknown key {where} (expected one of: {', '.join(allowed)})",
            )


def _service(parent: _Map, name: str, spec: Any) -> Service:
    path = f"services.{name}"
    line = parent.key_lines[name]
    if SERVICE_NAME.fullmatch(name) is None:
        raise _error(
            line,
            f'invalid service name "{name}": use 1 to 30 lowercase letters, digits and "-", '
            "starting with a letter",
        )
    if spec is None:
        spec = _Map(line)
    if not isinstance(spec, _Map):
        raise _error(parent.value_lines[name], f"{path} must be a mapping")
    _check_keys(spec, path, SERVICE_KEYS)
    values: dict[str, Any] = {"name": name}
    if "image" in spec:
        values["image"] = _text(spec, "image", path)
    if "build" in spec:
        values["build"] = _build(spec, path)
    if "command" in spec:
        values["command"] = _command(spec, path)
    if "port" in spec:
        values["port_scheme"], values["port"] = _port(spec, path)
    if "health" in spec:
        values["health"] = _health(spec, path)
    if "scale" in spec:
        scale = _mapping(spec, "scale", path)
        _check_keys(scale, f"{path}.scale", SCALE_KEYS)
        if "count" in scale:
            values["count"] = _int(scale, "count", f"{path}.scale", minimum=1)
    if "deployment" in spec:
        values.update(_deployment(spec, path))
    if "environment" in spec:
        values["environment"] = _environment(spec, "environment", path)
    return Service(**values)


def _mapping(parent: _Map, key: str, path: str) -> _Map:
    value = parent[key]
    if not isinstance(value, _Map):
        raise _error(parent.value_lines[key], f"{path}.{key} must be a mapping")
    return value


def _text(parent: _Map, key: str, path: str) -> str:
    value = parent[key]
    if not isinstance(value, str) or not value.strip():
        raise _error(parent.value_lines[key], f"{path}.{key} must be non-empty text")
    return value


def _int(parent: _Map, key: str, path: str, minimum: int, maximum: int | None = None) -> int:
    value = parent[key]
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        where = f"{path}.{key}"
        if maximum is not None:
            reason = f"must be an integer from {minimum} to {maximum}"
        elif minimum == 1:
            reason = "must be a positive integer"
        elif minimum == 0:
            reason = "must be a non-negative integer"
        else:
            reason = f"must be an integer of at least {minimum}"
        raise _error(parent.value_lines[key], f"{where} {reason}")
    assert isinstance(value, int)
    return value


def _build(spec: _Map, path: str) -> str:
    value = spec["build"]
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, _Map):
        _check_keys(value, f"{path}.build", BUILD_KEYS)
        if "manifest" in value:
            _text(value, "manifest", f"{path}.build")
        return _text(value, "path", f"{path}.build") if "path" in value else "."
    raise _error(spec.value_lines["build"], f"{path}.build must be a path or a mapping")


def _command(spec: _Map, path: str) -> str | list[str]:
    value = spec["command"]
    if isinstance(value, str):
        return value
    if isinstance(value, _Seq) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _error(spec.value_lines["command"], f"{path}.command must be text or a list of text")


def _port(spec: _Map, path: str) -> tuple[str, int]:
    value = spec["port"]
    line = spec.value_lines["port"]
    reason = f"{path}.port must be a port number from 1 to 65535 (optionally http: or https:)"
    if isinstance(value, bool):
        raise _error(line, reason)
    scheme, number = "http", None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        match = _PORT.fullmatch(value.strip())
        if match is not None:
            scheme, number = match.group(1) or "http", int(match.group(2))
    if number is None or not 1 <= number <= 65535:
        raise _error(line, reason)
    return scheme, number


def _health(spec: _Map, path: str) -> Health:
    value = spec["health"]
    hpath = f"{path}.health"
    if isinstance(value, str):
        if not value.startswith("/"):
            raise _error(spec.value_lines["health"], f"{hpath} must be a path starting with /")
        return Health(path=value)
    if not isinstance(value, _Map):
        raise _error(
            spec.value_lines["health"],
            f"{hpath} must be a path or a mapping of path, grace, interval, timeout",
        )
    _check_keys(value, hpath, HEALTH_KEYS)
    values: dict[str, Any] = {}
    if "path" in value:
        hp = value["path"]
        if not isinstance(hp, str) or not hp.startswith("/"):
            raise _error(value.value_lines["path"], f"{hpath}.path must be a path starting with /")
        values["path"] = hp
    if "grace" in value:
        values["grace"] = _int(value, "grace", hpath, minimum=0)
    if "interval" in value:
        values["interval"] = _int(value, "interval", hpath, minimum=1)
    if "timeout" in value:
        values["timeout"] = _int(value, "timeout", hpath, minimum=1)
    return Health(**values)


def _deployment(spec: _Map, path: str) -> dict[str, int]:
    value = _mapping(spec, "deployment", path)
    dpath = f"{path}.deployment"
    _check_keys(value, dpath, DEPLOYMENT_KEYS)
    values: dict[str, int] = {}
    if "minimum" in value:
        values["minimum"] = _int(value, "minimum", dpath, minimum=0, maximum=100)
    if "maximum" in value:
        values["maximum"] = _int(value, "maximum", dpath, minimum=100, maximum=1000)
    return values


def _environment(parent: _Map, key: str, path: str = "") -> list[EnvSpec]:
    value = parent[key]
    where = f"{path}.{key}" if path else key
    if value is None:
        return []
    if not isinstance(value, _Seq):
        raise _error(parent.value_lines[key], f"{where} must be a list of KEY or KEY=default")
    specs: list[EnvSpec] = []
    for item, line in zip(value, value.lines, strict=True):
        if not isinstance(item, str):
            raise _error(line, f"{where} entries must be KEY or KEY=default")
        name, sep, default = item.partition("=")
        if ENV_KEY.fullmatch(name) is None:
            raise _error(
                line,
                f'{where}: invalid env key "{name}": keys start with a letter or _ and hold only '
                "letters, digits and _",
            )
        specs.append(EnvSpec(key=name, default=default if sep else None))
    return specs


def validate_images(manifest: Manifest, images: dict[str, str]) -> dict[str, str]:
    """Check the image references given with a build against the manifest's services.

    Every service that uses ``build:`` or names no ``image:`` needs one; an image for a service
    the manifest does not define is an error.
    """
    unknown = sorted(images.keys() - manifest.services.keys())
    if unknown:
        raise InvalidArgument(
            f"images given for services not in the manifest: {', '.join(unknown)}"
        )
    for service, ref in images.items():
        if not ref.strip() or any(c.isspace() for c in ref) or "\x00" in ref:
            raise InvalidArgument(f'invalid image reference for service {service}: "{ref}"')
    missing = sorted(
        name
        for name, service in manifest.services.items()
        if service.needs_built_image and name not in images
    )
    if missing:
        raise InvalidArgument(
            f"no image given for service {', '.join(missing)}: services that use build: or "
            "name no image: need an image reference"
        )
    return dict(sorted(images.items()))
