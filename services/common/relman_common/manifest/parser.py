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

from typing import Any

from relman_common.errors import INVALID_MANIFEST, InvalidArgument
from relman_common.manifest import fields
from relman_common.manifest.lines import Map, Seq, load_with_lines, manifest_error
from relman_common.manifest.model import (
    MAX_RELEASE_TIMEOUT,
    EnvSpec,
    Manifest,
    ReleaseCommand,
    Service,
)
from relman_common.vocabulary import (
    MAX_MANIFEST_BYTES,
    clip,
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
DEPLOYMENT_KEYS = ("maximum", "minimum")
TERMINATION_KEYS = ("grace",)
RELEASE_KEYS = ("command", "service", "timeout")


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
    fields.check_keys(doc, "", TOP_KEYS)
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
    fields.check_keys(spec, path, SERVICE_KEYS)
    values: dict[str, Any] = {"name": name}
    if "image" in spec:
        values["image"] = fields.text(spec, "image", path)
    if "build" in spec:
        values["build"] = fields.build(spec, path)
    if "command" in spec:
        values["command"] = fields.command(spec, "command", path)
    if "port" in spec:
        values["port"] = fields.port(spec, path)
    if "ports" in spec:
        values["ports"] = fields.ports(spec, path)
    if "health" in spec:
        values["health"] = fields.health(spec, path)
    if "scale" in spec:
        values["scale"] = fields.scale(spec, path)
    if "deployment" in spec:
        deployment = fields.mapping(spec, "deployment", path, DEPLOYMENT_KEYS)
        dpath = f"{path}.deployment"
        if "minimum" in deployment:
            values["minimum"] = fields.integer(deployment, "minimum", dpath, 0, 100)
        if "maximum" in deployment:
            values["maximum"] = fields.integer(deployment, "maximum", dpath, 100, 1000)
    if "termination" in spec:
        termination = fields.mapping(spec, "termination", path, TERMINATION_KEYS)
        if "grace" in termination:
            values["termination_grace"] = fields.integer(
                termination, "grace", f"{path}.termination", 0
            )
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
    block = fields.mapping(doc, "release", "", RELEASE_KEYS)
    if not services:
        raise manifest_error(line, "release: a release command needs a service to run it")
    if "command" not in block:
        raise manifest_error(line, "release.command is required")
    command = fields.command(block, "command", "release")
    if not command:
        raise manifest_error(block.value_lines["command"], "release.command must not be empty")
    service = services[0].name
    if "service" in block:
        service = fields.text(block, "service", "release")
        if service not in {s.name for s in services}:
            raise manifest_error(
                block.value_lines["service"],
                f"release.service: no service named {clip(service)} "
                f"(expected one of: {', '.join(s.name for s in services)})",
            )
    timeout = (
        fields.integer(block, "timeout", "release", 1, MAX_RELEASE_TIMEOUT)
        if "timeout" in block
        else None
    )
    if timeout is None:
        return ReleaseCommand(command=command, service=service)
    return ReleaseCommand(command=command, service=service, timeout=timeout)
