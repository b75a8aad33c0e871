"""Wiring: a unit of work, a DB thread pool and the servicers in a relman_common Service."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc
from relman.v1 import (  # type: ignore[import-not-found]
    auth_pb2,
    auth_pb2_grpc,
    build_pb2,
    build_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from relman_common import tokens
from relman_common.db import DbExecutor, is_postgres
from relman_common.secretbox import SecretBox
from relman_common.server import Service
from relman_common.settings import DATA_DIR, WEBHOOK_HISTORY_DAYS
from relman_common.tls import ServerTls

from relman_release.api.auth import store_authenticator
from relman_release.api.build_servicer import BuildServicer
from relman_release.api.servicer import ReleaseServicer, TokenServicer
from relman_release.app import tokens as token_services
from relman_release.builds.logs import LogHub
from relman_release.builds.runner import BuildRunner, new_runner_id
from relman_release.builds.sweeper import Sweeper
from relman_release.builds.workshop import BuildConfig, open_workshop
from relman_release.domain.webhooks import ATTEMPT_TIMEOUT
from relman_release.store.uow import GroupedWrites, SqlUnitOfWork, open_store
from relman_release.webhooks.worker import DeliveryWorker

SERVICE_NAME = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"].full_name
TOKEN_SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["TokenService"].full_name
BUILD_SERVICE_NAME = build_pb2.DESCRIPTOR.services_by_name["BuildService"].full_name
DB_WORKERS = 8
# Threads for source uploads, archive reads, exports and imports (builds have their own).
FILE_WORKERS = 8


def build_service(
    addr: str,
    uow: SqlUnitOfWork,
    workers: int = DB_WORKERS,
    *,
    auth: bool = False,
    tls: ServerTls | None = None,
    builds: BuildConfig | None = None,
    webhook_timeout: float = ATTEMPT_TIMEOUT,
    webhook_history_days: float = WEBHOOK_HISTORY_DAYS.default,
) -> Service:
    """The Release and Token services on ``addr`` over ``uow`` and, with ``builds``, the
    Build service and its runner; stopping them interrupts this process's builds and releases
    the pools and the engine. With ``auth`` every call but health and reflection needs a
    token."""
    executor = DbExecutor(workers=workers, name="release-db")
    authenticate = store_authenticator(uow, executor) if auth else None
    # Group commit on SQLite only (on PostgreSQL, see relman_common.group_commit).
    writes = None if is_postgres(uow.engine) else GroupedWrites(uow, executor)
    servicer = ReleaseServicer(uow, executor, writes)
    token_servicer = TokenServicer(uow, executor, authenticate, writes)
    files = DbExecutor(workers=FILE_WORKERS, name="release-files")
    runner: BuildRunner | None = None
    build_servicer: BuildServicer | None = None
    sweeper: Sweeper | None = None
    if builds is not None:
        workshop = open_workshop(builds)
        sweeper = Sweeper(uow, executor, workshop)
        servicer.after_prune = sweeper.kick
        if uow.keep_releases:
            servicer.after_write = sweeper.kick
        runner = BuildRunner(
            uow,
            executor,
            workshop,
            LogHub(),
            concurrency=builds.concurrency,
            ttl=builds.heartbeat_ttl,
        )
        build_servicer = BuildServicer(uow, executor, files, workshop, runner)

    deliveries = DeliveryWorker(
        uow,
        executor,
        new_runner_id(),
        timeout=webhook_timeout,
        history=timedelta(days=webhook_history_days) if webhook_history_days else None,
    )
    previous_after_write = servicer.after_write

    def after_write() -> None:
        deliveries.kick_if_written()  # the write may have put events in the outbox
        if previous_after_write is not None:
            previous_after_write()

    servicer.after_write = after_write

    def register(server: grpc.aio.Server) -> None:
        release_pb2_grpc.add_ReleaseServiceServicer_to_server(servicer, server)
        auth_pb2_grpc.add_TokenServiceServicer_to_server(token_servicer, server)
        if build_servicer is not None:
            build_pb2_grpc.add_BuildServiceServicer_to_server(build_servicer, server)

    async def on_start() -> None:
        await deliveries.start()
        if runner is not None:
            await runner.start()
        if sweeper is not None:
            await sweeper.start()

    async def on_stop() -> None:
        await deliveries.stop()
        if sweeper is not None:
            await sweeper.stop()
        if runner is not None:
            await runner.stop()
        files.shutdown()
        executor.shutdown()
        if writes is not None:
            writes.close()
        uow.engine.dispose()

    names = [SERVICE_NAME, TOKEN_SERVICE_NAME, *([BUILD_SERVICE_NAME] if builds else [])]
    return Service(
        addr,
        register,
        names,
        on_start=on_start,
        on_stop=on_stop,
        tls=tls,
        authenticate=authenticate,
    )


def bootstrap_token_files(uow: SqlUnitOfWork, data_dir: Path) -> str | None:
    """On the first start (no token stored) creates the ``admin`` and ``deployer`` tokens and
    saves them to ``<data-dir>/admin.token`` and ``<data-dir>/deployer.token`` (mode 0600,
    replacing stale files left by another database). Returns the new admin secret, or None
    when tokens existed already."""

    def save(secrets: token_services.BootstrapSecrets) -> None:
        tokens.replace_secret_file(data_dir / tokens.ADMIN_TOKEN_FILE, secrets.admin)
        tokens.replace_secret_file(data_dir / tokens.DEPLOYER_TOKEN_FILE, secrets.deployer)

    created = token_services.bootstrap_tokens(uow, save)
    return created.admin if created is not None else None


def given_tokens(directory: Path) -> token_services.BootstrapSecrets:
    """The admin and deployer secrets an operator made, from ``directory``'s ``admin.token``
    and ``deployer.token`` (how a Kubernetes Secret mounts); ValueError naming what is wrong."""
    return token_services.BootstrapSecrets(
        admin=tokens.read_given_token(directory / tokens.ADMIN_TOKEN_FILE),
        deployer=tokens.read_given_token(directory / tokens.DEPLOYER_TOKEN_FILE),
    )


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def create_service(
    addr: str,
    database_url: str,
    *,
    data_dir: Path | None = None,
    auth: bool = False,
    tls: ServerTls | None = None,
    secret_key_file: Path | None = None,
    announce: Callable[[str], None] = _to_stderr,
    builds: BuildConfig | None = None,
    keep_releases: int = 0,
    webhook_timeout: float = ATTEMPT_TIMEOUT,
    bootstrap_tokens_dir: Path | None = None,
    webhook_history_days: float = WEBHOOK_HISTORY_DAYS.default,
) -> Service:
    """Opens (and migrates) the database at ``database_url`` and wires the service.

    Envs are sealed with the key of ``secret_key_file``, else ``RELMAN_SECRET_KEY``, else
    ``<data-dir>/secret.key`` (made on first start). With ``auth``, the first start also
    creates the admin and deployer tokens and announces the admin token once; with
    ``bootstrap_tokens_dir`` it stores the two secrets found there instead (and shows
    neither). Builds run
    with ``builds`` (default: the local builder, images and sources in the data dir).
    """
    directory = data_dir if data_dir is not None else DATA_DIR.value()
    box = SecretBox.from_env_or_file(directory, secret_key_file)
    uow = open_store(database_url, box, pool_size=DB_WORKERS, keep_releases=keep_releases)
    try:
        config = builds if builds is not None else BuildConfig(data_dir=directory)
        service = build_service(
            addr,
            uow,
            auth=auth,
            tls=tls,
            builds=config,
            webhook_timeout=webhook_timeout,
            webhook_history_days=webhook_history_days,
        )
        if auth and bootstrap_tokens_dir is not None:
            given = given_tokens(bootstrap_tokens_dir)
            if token_services.bootstrap_tokens(uow, lambda _: None, given) is not None:
                announce(f"relman: stored the admin and deployer tokens of {bootstrap_tokens_dir}")
        elif auth:
            admin = bootstrap_token_files(uow, directory)
            if admin is not None:
                path = directory / tokens.ADMIN_TOKEN_FILE
                announce(f"relman: created admin token (saved to {path}): {admin}")
    except BaseException:
        uow.engine.dispose()
        raise
    return service
