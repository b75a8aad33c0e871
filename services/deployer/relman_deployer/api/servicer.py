"""DeployerService: requests to orchestrator calls, results to messages. Nothing else.

Errors are project errors raised below; the shared interceptor maps them to status codes.
Closing a Promote, Rollback or Watch stream only detaches the watcher: the deployment goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from relman.v1 import deployer_pb2, deployer_pb2_grpc  # type: ignore[import-not-found]
from relman_common.actor import current_actor
from relman_common.auth import current_principal
from relman_common.grpc_errors import Context
from relman_common.request_ids import RequestKey, request_key

from relman_deployer.api.convert import UpdateMessages, deployment_to_pb, plan_to_pb
from relman_deployer.domain.model import Deployment
from relman_deployer.orchestrator import Orchestrator


class DeployerServicer(deployer_pb2_grpc.DeployerServiceServicer):  # type: ignore[misc]
    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator
        self._updates = UpdateMessages()

    async def Promote(
        self, request: deployer_pb2.PromoteRequest, context: Context
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        async for update in self._start(self._orchestrator.promote, request, force=request.force):
            yield update

    async def Rollback(
        self, request: deployer_pb2.RollbackRequest, context: Context
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        async for update in self._start(self._orchestrator.rollback, request, force=request.force):
            yield update

    async def Watch(
        self, request: deployer_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        async for update in self._follow(request.deployment_id, request.after_seq):
            yield update

    async def _start(
        self, start: Callable[..., Awaitable[Deployment]], request: Any, **options: Any
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        """``start`` (promote or rollback) a deployment of ``request.release_id`` in
        ``request.app``, then its updates from the first until it ends. A retry with the
        request id of a call that started one follows that one from its first update."""
        deployment = await start(
            request.app,
            request.release_id,
            timeout_seconds=request.timeout_seconds,
            actor=current_actor(),
            request=key_of(request),
            **options,
        )
        async for update in self._follow(deployment.id, 0):
            yield update

    async def _follow(
        self, deployment_id: str, after_seq: int
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        """The deployment's updates after ``after_seq`` until it ends, as stream messages."""
        async for item in self._orchestrator.watch(deployment_id, after_seq):
            yield self._updates(item)

    async def Cancel(
        self, request: deployer_pb2.CancelRequest, context: Context
    ) -> deployer_pb2.Deployment:
        deployment = await self._orchestrator.cancel(request.app, current_actor(), key_of(request))
        return deployment_to_pb(deployment)

    async def GetDeployment(
        self, request: deployer_pb2.GetDeploymentRequest, context: Context
    ) -> deployer_pb2.Deployment:
        deployment, diagnostics = await self._orchestrator.get_with_diagnostics(request.id)
        return deployment_to_pb(deployment, diagnostics)

    async def ListDeployments(
        self, request: deployer_pb2.ListDeploymentsRequest, context: Context
    ) -> deployer_pb2.ListDeploymentsResponse:
        deployments, token = await self._orchestrator.list(
            request.app, request.limit, request.page_token
        )
        return deployer_pb2.ListDeploymentsResponse(
            deployments=[deployment_to_pb(d) for d in deployments], next_page_token=token
        )

    async def PlanPromotion(
        self, request: deployer_pb2.PromoteRequest, context: Context
    ) -> deployer_pb2.PromotionPlan:
        plan = await self._orchestrator.plan(
            request.app,
            request.release_id,
            force=request.force,
            timeout_seconds=request.timeout_seconds,
            actor=current_actor(),
        )
        return plan_to_pb(plan)


def key_of(request: Any) -> RequestKey | None:
    """The client request id of the current call, for its caller (None when it sent none)."""
    principal = current_principal()
    caller = principal.name if principal is not None else current_actor()
    return request_key(caller, request)
