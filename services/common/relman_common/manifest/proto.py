"""The manifest model to and from ``ServiceSpec``/``ReleaseCommand`` messages: how the parsed
services of a release travel from the Release service to the Deployer.

>>> from relman_common.manifest import parse_manifest
>>> m = parse_manifest("environment: [A=1]\\nservices:\\n  web:\\n    port: https:443\\n")
>>> pb = service_to_pb(m.services[0], "registry/app:web.B1", {})
>>> back = service_from_pb(pb)
>>> back.image, back.port, back.env_defaults({})
('registry/app:web.B1', Port(number=443, scheme='https'), {'A': '1'})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from relman.v1 import types_pb2  # type: ignore[import-not-found]

from relman_common.manifest.model import (
    HTTP,
    HTTPS,
    EnvSpec,
    Health,
    Port,
    ReleaseCommand,
    Scale,
    Service,
)

_SCHEME_TO_PB = {HTTP: types_pb2.PORT_SCHEME_HTTP, HTTPS: types_pb2.PORT_SCHEME_HTTPS}
_SCHEME_FROM_PB = {v: k for k, v in _SCHEME_TO_PB.items()}


def service_to_pb(service: Service, image: str, env: Mapping[str, str]) -> types_pb2.ServiceSpec:
    """``service`` of a release whose env is ``env``, running ``image``."""
    pb = types_pb2.ServiceSpec(
        name=service.name,
        image=image,
        command=list(service.command),
        ports=list(service.ports),
        scale=types_pb2.Scale(
            count=service.scale.count,
            max=service.scale.max,
            cpu=service.scale.cpu,
            memory=service.scale.memory,
        ),
        env_defaults=service.env_defaults(env),
        deployment_minimum=service.minimum,
        deployment_maximum=service.maximum,
        termination_grace_seconds=service.termination_grace,
        internal=service.internal,
    )
    if service.port is not None:
        pb.port.CopyFrom(
            types_pb2.Port(number=service.port.number, scheme=_SCHEME_TO_PB[service.port.scheme])
        )
        health = service.health
        pb.health.CopyFrom(
            types_pb2.HealthCheck(
                path=health.path,
                grace_seconds=health.grace,
                interval_seconds=health.interval,
                timeout_seconds=health.timeout,
            )
        )
    return pb


def service_from_pb(pb: types_pb2.ServiceSpec) -> Service:
    """The deployable service: its image resolved, its environment the defaults to add."""
    port = None
    health = Health()
    if pb.HasField("port"):
        port = Port(number=pb.port.number, scheme=_SCHEME_FROM_PB.get(pb.port.scheme, HTTP))
    if pb.HasField("health"):
        h = pb.health
        health = Health(h.path, h.grace_seconds, h.interval_seconds, h.timeout_seconds)
    return Service(
        name=pb.name,
        image=pb.image,
        command=tuple(pb.command),
        port=port,
        ports=tuple(pb.ports),
        health=health,
        scale=Scale(pb.scale.count, pb.scale.max, pb.scale.cpu, pb.scale.memory),
        environment=tuple(EnvSpec(k, v) for k, v in sorted(pb.env_defaults.items())),
        minimum=pb.deployment_minimum,
        maximum=pb.deployment_maximum,
        termination_grace=pb.termination_grace_seconds,
        internal=pb.internal,
    )


def services_from_pb(pbs: Iterable[types_pb2.ServiceSpec]) -> tuple[Service, ...]:
    return tuple(service_from_pb(pb) for pb in pbs)


def release_command_to_pb(command: ReleaseCommand) -> types_pb2.ReleaseCommand:
    return types_pb2.ReleaseCommand(
        command=list(command.command), service=command.service, timeout_seconds=command.timeout
    )


def release_command_from_pb(pb: types_pb2.ReleaseCommand) -> ReleaseCommand:
    return ReleaseCommand(command=tuple(pb.command), service=pb.service, timeout=pb.timeout_seconds)
