"""The ReleaseService servicer: protos in, use-case calls, protos out.

It maps no errors: use-cases raise relman_common.errors and the shared interceptor turns them
into status codes. Blocking database work runs on the DbExecutor, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from grpc.aio import ServicerContext as Context
from relman.v1 import release_pb2, release_pb2_grpc  # type: ignore[import-not-found]
from relman_common.actor import current_actor
from relman_common.db import DbExecutor

from relman_release import services
from relman_release.api import converters as cv
from relman_release.domain.model import Build, Release
from relman_release.ports import UnitOfWork

T = TypeVar("T")


class ReleaseServicer(release_pb2_grpc.ReleaseServiceServicer):  # type: ignore[misc]
    def __init__(self, uow: UnitOfWork, executor: DbExecutor) -> None:
        self._uow = uow
        self._executor = executor

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._executor.run(fn, self._uow, *args, **kwargs)

    # --- apps ---

    async def CreateApp(
        self, request: release_pb2.CreateAppRequest, context: Context
    ) -> release_pb2.App:
        return cv.app_pb(await self._run(services.create_app, request.name, current_actor()))

    async def GetApp(self, request: release_pb2.GetAppRequest, context: Context) -> release_pb2.App:
        return cv.app_pb(await self._run(services.get_app, request.name))

    async def ListApps(
        self, request: release_pb2.ListAppsRequest, context: Context
    ) -> release_pb2.ListAppsResponse:
        apps = await self._run(services.list_apps)
        return release_pb2.ListAppsResponse(apps=[cv.app_pb(a) for a in apps])

    async def DeleteApp(
        self, request: release_pb2.DeleteAppRequest, context: Context
    ) -> release_pb2.DeleteAppResponse:
        await self._run(services.delete_app, request.name)
        return release_pb2.DeleteAppResponse()

    # --- builds ---

    async def ImportBuild(
        self, request: release_pb2.ImportBuildRequest, context: Context
    ) -> release_pb2.ImportBuildResponse:
        result = await self._run(
            services.import_build,
            request.app,
            request.manifest,
            dict(request.images),
            request.description,
            request.git_sha,
            current_actor(),
        )
        return cv.imported_build_pb(result)

    async def GetBuild(
        self, request: release_pb2.GetBuildRequest, context: Context
    ) -> release_pb2.Build:
        return cv.build_pb(await self._run(services.get_build, request.app, request.id))

    async def ListBuilds(
        self, request: release_pb2.ListBuildsRequest, context: Context
    ) -> release_pb2.ListBuildsResponse:
        listing = await self._run(
            services.list_builds, request.app, request.limit, request.page_token
        )
        builds = [cv.build_pb(b) for b in listing.items if isinstance(b, Build)]
        return release_pb2.ListBuildsResponse(
            builds=builds, next_page_token=listing.next_page_token
        )

    # --- environment ---

    async def GetEnv(
        self, request: release_pb2.GetEnvRequest, context: Context
    ) -> release_pb2.GetEnvResponse:
        view = await self._run(services.get_env, request.app, request.release_id)
        return release_pb2.GetEnvResponse(env=dict(view.env), release_id=view.release_id)

    async def ChangeEnv(
        self, request: release_pb2.ChangeEnvRequest, context: Context
    ) -> release_pb2.ChangeEnvResponse:
        result = await self._run(
            services.change_env,
            request.app,
            dict(request.set),
            list(request.unset),
            request.replace,
            current_actor(),
        )
        return cv.env_changed_pb(result)

    # --- releases ---

    async def CreateRelease(
        self, request: release_pb2.CreateReleaseRequest, context: Context
    ) -> release_pb2.Release:
        release = await self._run(
            services.create_release,
            request.app,
            request.build_id,
            dict(request.env),
            request.description,
            current_actor(),
        )
        return cv.release_pb(release)

    async def GetRelease(
        self, request: release_pb2.GetReleaseRequest, context: Context
    ) -> release_pb2.Release:
        return cv.release_pb(await self._run(services.get_release, request.app, request.id))

    async def ListReleases(
        self, request: release_pb2.ListReleasesRequest, context: Context
    ) -> release_pb2.ListReleasesResponse:
        listing = await self._run(
            services.list_releases, request.app, request.limit, request.page_token
        )
        releases = [cv.release_pb(r) for r in listing.items if isinstance(r, Release)]
        return release_pb2.ListReleasesResponse(
            releases=releases, next_page_token=listing.next_page_token
        )

    async def GetReleaseManifest(
        self, request: release_pb2.GetReleaseManifestRequest, context: Context
    ) -> release_pb2.GetReleaseManifestResponse:
        manifest = await self._run(services.get_release_manifest, request.app, request.id)
        return release_pb2.GetReleaseManifestResponse(manifest=manifest)

    async def CreateReleaseFrom(
        self, request: release_pb2.CreateReleaseFromRequest, context: Context
    ) -> release_pb2.Release:
        release = await self._run(
            services.create_release_from,
            request.app,
            request.build_from,
            request.env_from,
            request.use_active_release_build,
            request.use_active_release_env,
            current_actor(),
        )
        return cv.release_pb(release)

    async def DiffReleases(
        self, request: release_pb2.DiffReleasesRequest, context: Context
    ) -> release_pb2.ReleaseDiff:
        diff = await self._run(services.diff_releases, request.app, request.from_id, request.to_id)
        return cv.release_diff_pb(diff)

    # --- calls made by the Deployer ---

    async def GetDeployable(
        self, request: release_pb2.GetDeployableRequest, context: Context
    ) -> release_pb2.Deployable:
        deployable = await self._run(services.get_deployable, request.app, request.release_id)
        return cv.deployable_pb(deployable)

    async def CreateRollbackRelease(
        self, request: release_pb2.CreateRollbackReleaseRequest, context: Context
    ) -> release_pb2.Release:
        release = await self._run(
            services.create_rollback_release, request.app, request.release_id, current_actor()
        )
        return cv.release_pb(release)

    async def MarkReleaseActive(
        self, request: release_pb2.MarkReleaseActiveRequest, context: Context
    ) -> release_pb2.App:
        app = await self._run(
            services.mark_release_active, request.app, request.release_id, request.deployment_id
        )
        return cv.app_pb(app)

    async def RecordDeploymentOutcome(
        self, request: release_pb2.RecordDeploymentOutcomeRequest, context: Context
    ) -> release_pb2.Release:
        release = await self._run(
            services.record_deployment_outcome,
            request.app,
            request.release_id,
            request.deployment_id,
            request.outcome,
        )
        return cv.release_pb(release)
