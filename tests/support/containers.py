"""Pytest plugin: a private Docker engine, a registry and a busybox base image, started by the
tests themselves (the plumbing is :mod:`relman_cluster.dockerd`, shared with ``make cluster``'s
real node; this file holds the pytest side: fixtures and skip-or-fail).

Loaded for the whole suite by ``tests/conftest.py`` (``pytest_plugins``); importing it starts
nothing. Session-scoped fixtures, each started the first time a test asks for it:

``docker_daemon`` -> :class:`DockerDaemon`
    A private ``dockerd`` (Debian ``docker.io``) with its own ``containerd``: own socket, data
    root, exec root and pidfile under the session's tmp dir, storage driver overlay2, cgroupfs
    cgroup driver, runc (never crun). ``.host`` is the ``unix://...`` value for
    ``DOCKER_HOST``, ``.pid`` the daemon's pid, ``.docker(*args)`` runs the docker CLI against
    it (and only it: ``DOCKER_HOST`` and a private ``DOCKER_CONFIG`` are set), ``.env`` is an
    environment for other clients. Stopped by pid at the end of the session; leftover mounts
    are unmounted and its data and exec roots removed (``dockerd.log`` is kept).
``registry`` -> :class:`Registry`
    Debian's ``docker-registry`` (distribution 2.8) on ``127.0.0.1:<free port>``, filesystem
    storage in the session's tmp dir, deletes enabled. ``.addr`` is ``127.0.0.1:PORT``.
``base_image`` -> :class:`BaseImage`
    A ~2 MB image holding ``/bin/busybox`` from ``busybox-static``, applet links (``sh`` ...)
    and ``/etc/passwd`` with ``root`` and ``nobody``, made with ``docker import``, pushed as
    ``<registry>/relman-test/busybox:1``. ``.ref`` is that tag, ``.digest`` its manifest digest
    as the registry reports it, ``.digest_ref`` is ``repo@digest``.

Where Docker cannot run (binaries missing, not root, the daemon fails to start) the fixtures
``pytest.skip`` with the reason (the daemon's log tail included); with ``RELMAN_CI`` set they
``pytest.fail`` instead: CI is never a place where these tests skip. ``.ci/run`` installs the
Debian packages (see ``containers_unavailable_reason`` for what is checked).

Networking and isolation (why two sessions, or two xdist workers, never collide):

* Each daemon that starts is private to the pytest process that started it: its own paths,
  its own ``containerd`` (passed with ``--containerd``, so a system containerd is never
  picked up) and its own config file (``/etc/docker/daemon.json`` is not read).
* Its containers sit on a Linux bridge the session creates (``rlm<8 hex>``), on a /24 taken
  from 10.213.0.0/16 that overlaps none of the host's routes (chosen under a host-wide lock
  so two sessions cannot pick the same one) and deleted at the end; bridges left by a
  session that died are deleted by the next one. The daemon runs with ``--iptables=false
  --ip-forward=false --ip-masq=false``: it changes no iptables rule and no sysctl (two
  dockerds with iptables on would flush each other's chains), so containers reach the host
  and each other on that bridge but nothing beyond it. Published ports go through
  docker-proxy: publish on ``127.0.0.1`` and test through them. A build that must download
  something uses ``--network host``.
* Processes are started in their own session (Ctrl-C reaches pytest, which tears down in
  order). A guardian process per daemon waits for pytest to stop the daemon or to die
  (even by SIGKILL) and then puts everything down in order; the registry gets SIGTERM from
  the kernel when pytest dies (a parent-death signal).
* In ``make test`` (``-n 2 --dist loadgroup``) the tests that use these fixtures are marked
  ``@pytest.mark.xdist_group("containers")``, so one worker starts one daemon and one
  registry for all of them instead of one per worker. That is economy, not safety: a second
  daemon elsewhere (another worker, another checkout's tests) is harmless.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

try:
    import relman_cluster  # noqa: F401
except ImportError:  # not installed in the venv: use the source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cluster"))

from relman_cluster.dockerd import (
    BASE_REPOSITORY,
    BASE_TAG,
    BRIDGE_ALIAS,
    MANIFEST_TYPES,
    BaseImage,
    Bridge,
    ContainersUnavailable,
    DockerDaemon,
    Registry,
    build_base_image,
    busybox_rootfs_tar,
    cleanup_docker_workdir,
    containers_unavailable_reason,
    create_bridge,
    delete_bridge,
    docker_cli_path,
    start_docker_daemon,
    start_registry,
    stop_docker_daemon,
    stop_registry,
)
from relman_cluster.dockerd import _free_port as free_port

__all__ = [
    "BASE_REPOSITORY",
    "BASE_TAG",
    "BRIDGE_ALIAS",
    "MANIFEST_TYPES",
    "BaseImage",
    "Bridge",
    "ContainersUnavailable",
    "DockerDaemon",
    "Registry",
    "base_image",
    "build_base_image",
    "busybox_rootfs_tar",
    "cleanup_docker_workdir",
    "containers_unavailable_reason",
    "create_bridge",
    "delete_bridge",
    "docker_cli_path",
    "docker_daemon",
    "free_port",
    "registry",
    "skip_or_fail",
    "start_docker_daemon",
    "start_registry",
    "stop_docker_daemon",
    "stop_registry",
]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with ``reason``; in CI (``RELMAN_CI`` set) a missing piece is a failure instead."""
    if os.environ.get("RELMAN_CI"):
        pytest.fail(f"containers unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"containers unavailable: {reason}")


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A private dockerd for this session (skips locally / fails in CI where it cannot run)."""
    reason = containers_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    workdir = tmp_path_factory.mktemp("dockerd")
    try:
        daemon = start_docker_daemon(workdir)
    except ContainersUnavailable as err:
        skip_or_fail(f"a private dockerd could not start here: {err}")
    try:
        yield daemon
    finally:
        stop_docker_daemon(daemon)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1 for this session."""
    reason = containers_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    try:
        reg = start_registry(tmp_path_factory.mktemp("registry"))
    except ContainersUnavailable as err:
        skip_or_fail(f"the registry could not start here: {err}")
    try:
        yield reg
    finally:
        stop_registry(reg)


@pytest.fixture(scope="session")
def base_image(docker_daemon: DockerDaemon, registry: Registry) -> BaseImage:
    """The busybox base, built once per session and pushed to ``registry``."""
    return build_base_image(docker_daemon, registry)
