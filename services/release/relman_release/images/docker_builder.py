"""The ``docker`` builder: any Docker Engine API (dockerd, Podman's service) at ``DOCKER_HOST``,
through the Docker SDK for Python. Every Dockerfile instruction works, ``RUN`` included.

The SDK sends the context (applying a ``.dockerignore`` in it, as ``docker build`` does), the
daemon builds and tags ``<registry>/<app>:<service>.<BuildID>``, then pushes it; the log
is the daemon's ``stream`` lines as they come, and the result the digest the push reports.
The daemon's errors become relman's: its message, with the reason the builders share (a
Dockerfile it cannot read, a missing COPY source, a base the registry does not have, a
registry it cannot reach). Images stay in the daemon afterwards, as its build cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import docker
from docker.errors import APIError, DockerException
from docker.utils import kwargs_from_env
from relman_common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RelmanError,
    Unauthenticated,
    Unavailable,
)
from relman_common.vocabulary import quote

from relman_release.images.base import (
    BASE_NOT_FOUND,
    DOCKER_UNAVAILABLE,
    INVALID_DOCKERFILE,
    MISSING_SOURCE,
    REGISTRY_UNAVAILABLE,
    BuildFailed,
    BuildRequest,
    BuiltImage,
    LogFn,
    dockerfile_path,
)
from relman_release.images.reference import DIGEST, Registry, parse_image, parse_registry

_DIGEST_LINE = re.compile(r"digest: (sha256:[a-f0-9]{64})")
# A build may print nothing for a long time (a slow RUN): wait up to an hour for each line.
BUILD_TIMEOUT = 3600
# Connecting to the daemon and its short answers.
API_TIMEOUT = 60

# The daemon's words, by what they mean; the first that matches decides.
_MEANINGS: list[tuple[str, type[RelmanError], str]] = [
    (r"connection refused|no such host|i/o timeout", Unavailable, REGISTRY_UNAVAILABLE),
    (r"dockerfile parse error|unknown instruction", InvalidArgument, INVALID_DOCKERFILE),
    (r"(COPY|ADD) failed|file not found in build context", InvalidArgument, MISSING_SOURCE),
    (r"manifest unknown|not found: manifest|pull access denied", NotFound, BASE_NOT_FOUND),
    (r"unauthorized|authentication required|denied: requested access", Unauthenticated, ""),
]


def daemon_error(message: str, doing: str) -> RelmanError:
    """A relman error for what the daemon said went wrong while ``doing`` (build, push)."""
    text = f"{doing} failed: {message.strip()}"
    for pattern, kind, reason in _MEANINGS:
        if re.search(pattern, message, re.IGNORECASE):
            return kind(text, reason=reason)
    return BuildFailed(text)


class DockerBuilder:
    """Builds with the daemon at ``docker_host`` (unset: ``DOCKER_HOST``, else Docker's
    default socket) and pushes to ``registry``, which it needs."""

    name = "docker"

    def __init__(
        self,
        docker_host: str | None = None,
        registry: str | Registry | None = None,
        registry_username: str = "",
        registry_password: str = "",
    ) -> None:
        if not registry:
            raise FailedPrecondition(
                "the docker builder pushes its images to a registry: set RELMAN_REGISTRY "
                "(or use the local builder, which keeps images in the data dir)"
            )
        self.registry = parse_registry(registry) if isinstance(registry, str) else registry
        self.docker_host = docker_host
        self._auth = (
            {"username": registry_username, "password": registry_password}
            if registry_username
            else None
        )

    def _client(self) -> docker.APIClient:
        options: dict[str, Any] = dict(kwargs_from_env())
        if self.docker_host:
            options["base_url"] = self.docker_host
        where = options.get("base_url") or "the default socket (DOCKER_HOST is unset)"
        try:
            client = docker.APIClient(version="auto", timeout=API_TIMEOUT, **options)
            client.ping()
        except DockerException as err:
            raise Unavailable(
                f"the Docker daemon at {where} cannot be reached: {err}; is it running, and is "
                "DOCKER_HOST right?",
                reason=DOCKER_UNAVAILABLE,
            ) from None
        if self._auth:
            try:
                client.login(
                    self._auth["username"], self._auth["password"], registry=self.registry.host
                )
            except APIError as err:
                client.close()
                raise daemon_error(str(err.explanation or err), "login") from None
        return client

    def build(self, request: BuildRequest, log: LogFn) -> BuiltImage:
        dockerfile_path(request)
        target = parse_image(request.image)
        if target.registry != self.registry.host or target.digest:
            raise InvalidArgument(
                f"cannot push {quote(request.image)}: expected {self.registry.host}/<app>:<tag>"
            )
        client = self._client()
        try:
            output = client.build(
                path=str(request.context),
                dockerfile=request.dockerfile,
                tag=str(target),
                nocache=request.no_cache,
                buildargs=dict(request.build_args),
                rm=True,
                forcerm=True,
                decode=True,
                timeout=BUILD_TIMEOUT,
                use_config_proxy=False,
            )
            _follow(output, log, "build")
            log(f"Pushing {target}")
            pushed = client.push(
                f"{target.registry}/{target.repository}",
                tag=target.tag,
                stream=True,
                decode=True,
                auth_config=self._auth,
            )
            digest = _follow(pushed, log, "push")
        except APIError as err:
            raise daemon_error(str(err.explanation or err), "build") from None
        except DockerException as err:
            raise Unavailable(
                f"the Docker daemon stopped answering: {err}", reason=DOCKER_UNAVAILABLE
            ) from None
        finally:
            client.close()
        if not digest:
            raise BuildFailed(f"the daemon pushed {target} but did not say its digest")
        log(f"Pushed {target} digest: {digest}")
        return BuiltImage(str(target), digest)


def _follow(entries: Iterable[dict[str, Any]], log: LogFn, doing: str) -> str:
    """Log the daemon's lines as they come and raise its error; the pushed digest, if told
    (in an ``aux`` entry, or a ``<tag>: digest: sha256:... size: N`` line)."""
    digest = ""
    pending = ""
    for entry in entries:
        if entry.get("error") or entry.get("errorDetail"):
            if pending:
                log(pending)
            detail = entry.get("errorDetail") or {}
            raise daemon_error(str(entry.get("error") or detail.get("message")), doing)
        aux = entry.get("aux")
        if isinstance(aux, dict) and DIGEST.fullmatch(str(aux.get("Digest", ""))):
            digest = str(aux["Digest"])
        pending += str(entry["stream"]) if "stream" in entry else _status(entry)
        *complete, pending = pending.split("\n")
        for line in complete:
            log(line.rstrip("\r"))
            found = _DIGEST_LINE.search(line)
            digest = found[1] if found and not digest else digest
    if pending:
        log(pending)
    return digest


def _status(entry: dict[str, Any]) -> str:
    """A pull or push status as one line; progress updates (bars, "Pushing") as nothing."""
    status = entry.get("status")
    if not status or entry.get("progress") or status in ("Preparing", "Waiting", "Pushing"):
        return ""
    return f"{entry['id']}: {status}\n" if entry.get("id") else f"{status}\n"
