"""The ReleaseService and TokenService servicers: protos in, use-case calls, protos out.

Each RPC is one row: the use-case it calls, the request fields it passes and the converter
of the result. No errors are mapped here (use-cases raise relman_common.errors, the shared
interceptor maps them), and blocking database work runs on the DbExecutor, off the event
loop. On SQLite, writes go through group commit (store.uow.GroupedWrites): those that
arrive while one commits share the next commit, each in a savepoint of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from relman.v1 import (  # type: ignore[import-not-found]
    auth_pb2,
    auth_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from relman_common.actor import current_actor
from relman_common.auth import CachedAuthenticator, current_principal
from relman_common.db import DbExecutor
from relman_common.grpc_errors import Context
from relman_common.request_ids import DuplicateRequest, RequestKey, request_key

from relman_release.api import converters as cv
from relman_release.app import (
    apps,
    builds,
    deployments,
    env,
    releases,
    retention,
    tokens,
    webhooks,
)
from relman_release.ports import UnitOfWork, Writes
from relman_release.store import requests
from relman_release.store.uow import SharedWrite, SqlUnitOfWork

# Any parameters: the generated servicer base declares each method with its own request type.
Handler = Callable[..., Awaitable[Any]]


def rpc(
    use_case: Callable[..., Any],
    args: Callable[[Any], tuple[Any, ...]],
    to_pb: Callable[[Any], Any],
    *,
    actor: bool = False,
    caller: bool = False,
    write: bool = False,
    grouped: bool = True,
) -> Handler:
    """A unary handler: ``use_case(uow, [principal,] *args(request)[, actor])`` on the
    executor, then ``to_pb`` of its result. ``caller`` passes the verified principal first
    (token rules), ``actor`` the person recorded on what the call writes, last. A ``write``
    goes through the servicer's group commit, when it has one (and ``grouped``); with a
    client request id it is done once (see :meth:`_Servicer.once`)."""

    async def handler(self: _Servicer, request: Any, context: Context) -> Any:
        before = (current_principal(),) if caller else ()
        after = (current_actor(),) if actor else ()
        call = (*before, *args(request), *after)
        key = request_key(caller_name(), request) if write else None
        if key is not None:
            response = await self.once(key, lambda uow: to_pb(use_case(uow, *call)), grouped)
            if self.after_write is not None:
                self.after_write()
            return response
        if write and grouped and self.writes is not None:
            result = await self.writes.run(use_case, *call)
        else:
            result = await self.executor.transaction(use_case, self.uow, *call)
        if write and self.after_write is not None:
            self.after_write()
        return to_pb(result)

    return handler


def caller_name() -> str:
    """Whose request ids a call's id is one of: the verified token's name (the actor's name
    when authentication is off)."""
    principal = current_principal()
    return principal.name if principal is not None else current_actor()


class _Servicer:
    """``writes`` runs the write use-cases (None: on the executor, like the others)."""

    def __init__(
        self, uow: SqlUnitOfWork, executor: DbExecutor, writes: Writes | None = None
    ) -> None:
        self.uow = uow
        self.executor = executor
        self.writes = writes
        # Called after a prune committed: its files can go now.
        self.after_prune: Callable[[], None] | None = None
        # Called after each write committed (automatic retention may have pruned).
        self.after_write: Callable[[], None] | None = None

    async def once(
        self, key: RequestKey, respond: Callable[[UnitOfWork], Message], grouped: bool
    ) -> Message:
        """The response of ``respond(uow)``, or the one recorded for ``key`` when a call with
        the same request id succeeded before: the write, the recall and the record of its
        response are one transaction, so a change is never made twice for one id."""

        def body(uow: SharedWrite) -> Message:
            found = requests.recall(uow, key)
            if found is not None:
                return found
            response = respond(uow)
            requests.record(uow, key, response)
            return response

        try:
            if grouped and self.writes is not None:
                return await self.writes.run(body)
            return await self.executor.transaction(requests.in_one_transaction, self.uow, body)
        except DuplicateRequest:
            # A concurrent call with the same id committed first: its response is the answer.
            found = await self.executor.transaction(requests.recall_committed, self.uow, key)
            if found is None:
                raise
            return found


class ReleaseServicer(_Servicer, release_pb2_grpc.ReleaseServiceServicer):  # type: ignore[misc]
    CreateApp = rpc(apps.create_app, lambda r: (r.name,), cv.app_pb, actor=True, write=True)
    GetApp = rpc(apps.get_app, lambda r: (r.name,), cv.app_pb)
    LockApp = rpc(apps.lock_app, lambda r: (r.app, r.message), cv.app_pb, actor=True, write=True)
    UnlockApp = rpc(apps.unlock_app, lambda r: (r.app,), cv.app_pb, write=True)

    _prune = rpc(
        retention.prune_releases,
        lambda r: (r.app, r.keep, r.dry_run),
        cv.prune_pb,
        actor=True,
        write=True,
    )

    async def PruneReleases(
        self, request: release_pb2.PruneReleasesRequest, context: Context
    ) -> release_pb2.PruneReleasesResponse:
        response: release_pb2.PruneReleasesResponse = await self._prune(request, context)
        if self.after_prune is not None and not request.dry_run:
            self.after_prune()
        return response

    AddWebhook = rpc(
        webhooks.add_webhook,
        lambda r: (r.app, r.url, list(r.events), r.secret),
        cv.added_webhook_pb,
        actor=True,
        write=True,
    )
    ListWebhooks = rpc(webhooks.list_webhooks, lambda r: (r.app,), cv.webhooks_pb)
    RemoveWebhook = rpc(
        webhooks.remove_webhook,
        lambda r: (r.id,),
        lambda _: release_pb2.RemoveWebhookResponse(),
        write=True,
    )
    ListWebhookDeliveries = rpc(
        webhooks.list_deliveries, lambda r: (r.id, r.limit), cv.deliveries_pb
    )

    PinRelease = rpc(retention.pin_release, lambda r: (r.app, r.id), cv.release_pb, write=True)
    UnpinRelease = rpc(retention.unpin_release, lambda r: (r.app, r.id), cv.release_pb, write=True)
    ListApps = rpc(apps.list_apps, lambda r: (), cv.apps_pb)
    DeleteApp = rpc(
        apps.delete_app,
        lambda r: (r.name,),
        lambda _: release_pb2.DeleteAppResponse(),
        write=True,
    )

    # Not through group commit: it parses its manifest (up to 1 MiB of YAML) before it
    # writes, which must not hold a transaction that other writes share.
    ImportBuild = rpc(
        builds.import_build,
        lambda r: (r.app, r.manifest, dict(r.images), r.description, r.git_sha),
        cv.imported_build_pb,
        actor=True,
        write=True,
        grouped=False,
    )
    GetBuild = rpc(builds.get_build, lambda r: (r.app, r.id), cv.build_pb)
    ListBuilds = rpc(builds.list_builds, lambda r: (r.app, r.limit, r.page_token), cv.builds_pb)

    GetEnv = rpc(env.get_env, lambda r: (r.app, r.release_id), cv.env_view_pb)
    ChangeEnv = rpc(
        env.change_env,
        lambda r: (r.app, dict(r.set), list(r.unset), r.replace),
        cv.env_changed_pb,
        actor=True,
        write=True,
    )

    CreateRelease = rpc(
        releases.create_release,
        lambda r: (r.app, r.build_id, dict(r.env), r.description),
        cv.release_pb,
        actor=True,
        write=True,
    )
    GetRelease = rpc(releases.get_release, lambda r: (r.app, r.id), cv.release_pb)
    ListReleases = rpc(
        releases.list_releases, lambda r: (r.app, r.limit, r.page_token), cv.releases_pb
    )
    GetReleaseManifest = rpc(
        releases.get_release_manifest,
        lambda r: (r.app, r.id),
        lambda m: release_pb2.GetReleaseManifestResponse(manifest=m),
    )
    CreateReleaseFrom = rpc(
        releases.create_release_from,
        lambda r: (
            r.app,
            r.build_from,
            r.env_from,
            r.use_active_release_build,
            r.use_active_release_env,
        ),
        cv.release_pb,
        actor=True,
        write=True,
    )
    DiffReleases = rpc(
        releases.diff_releases, lambda r: (r.app, r.from_id, r.to_id), cv.release_diff_pb
    )

    GetDeployable = rpc(
        deployments.get_deployable, lambda r: (r.app, r.release_id), cv.deployable_pb
    )
    CreateRollbackRelease = rpc(
        deployments.create_rollback_release,
        lambda r: (r.app, r.release_id, r.force),
        cv.deployable_pb,
        actor=True,
        write=True,
    )
    ReportDeployment = rpc(
        deployments.report_deployment,
        lambda r: (cv.report_from_pb(r),),
        cv.reported_pb,
        caller=True,
        write=True,
    )


class TokenServicer(_Servicer, auth_pb2_grpc.TokenServiceServicer):  # type: ignore[misc]
    """The caller is the principal the interceptor verified (None when authentication is
    off); a revoked token is forgotten by this replica's authentication cache at once."""

    def __init__(
        self,
        uow: SqlUnitOfWork,
        executor: DbExecutor,
        cache: CachedAuthenticator | None,
        writes: Writes | None = None,
    ) -> None:
        super().__init__(uow, executor, writes)
        self._cache = cache

    CreateToken = rpc(
        tokens.create_token,
        lambda r: (r.name, cv.token_kind_from_pb(r.kind)),
        cv.created_token_pb,
        caller=True,
        write=True,
    )
    ListTokens = rpc(tokens.list_tokens, lambda r: (), cv.tokens_pb, caller=True)
    WhoAmI = rpc(tokens.who_am_i, lambda r: (), cv.token_pb, caller=True)
    _revoke = rpc(tokens.revoke_token, lambda r: (r.name,), cv.token_pb, caller=True, write=True)

    async def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: Context
    ) -> auth_pb2.Token:
        token: auth_pb2.Token = await self._revoke(request, context)
        if self._cache is not None:
            self._cache.forget(token.name)
        return token
