"""Generated inputs to every RPC of ReleaseService, TokenService and DeployerService: only the
documented status codes come back (never INTERNAL or UNKNOWN), and a refused call writes nothing.

Requests are built from each RPC's message descriptor, so a new RPC or field is covered without
touching this file. String fields draw from names and ids that exist (so many calls get past
validation and hit NOT_FOUND / FAILED_PRECONDITION / OK paths) and from arbitrary text.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from deployer.support import manifest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from helpers import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relman.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    deployer_pb2,
    deployer_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)
from relman_common.auth import call_metadata
from relman_common.tokens import generate

from .inproc import World
from .support import figure

pytestmark = pytest.mark.xdist_group("reliability-fuzz")

DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
CASES_PER_RPC = 175  # x 29 RPCs = 5,075 cases
RELEASE = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"]
TOKENS = auth_pb2.DESCRIPTOR.services_by_name["TokenService"]
DEPLOYER = deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"]
# Names whose deletion or revocation would end the run's ability to call at all.
PROTECTED = {"admin", "deployer", "fuzzer", "stable"}


class Background:
    """An event loop in a thread, hosting the in-process services while the test calls them
    with blocking stubs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Fuzz:
    """The services, the names and ids that exist, and a tally of status codes."""

    def __init__(self, world: World, user_token: str, pools: dict[str, list[str]]) -> None:
        self.world = world
        self.user_token = user_token
        self.pools = pools
        self.release = grpc.insecure_channel(world.release_addr)
        self.deployer = grpc.insecure_channel(world.deployer_addr)
        self.codes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.unchanged_checks = 0

    def close(self) -> None:
        self.release.close()
        self.deployer.close()


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    bg = Background()
    world = bg.run(World(f"sqlite:///{tmp / 'relman.db'}", tmp / "data", pod_delay=0.0).start())
    admin = call_metadata(world.admin, "alice")
    channel = grpc.insecure_channel(world.release_addr)
    try:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        stub.CreateApp(release_pb2.CreateAppRequest(name="stable"), metadata=admin)
        built = stub.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="stable", manifest=manifest(1), images={"web": "registry.example/web:1"}
            ),
            metadata=admin,
        )
        changed = stub.ChangeEnv(
            release_pb2.ChangeEnvRequest(app="stable", set={"A": "1"}), metadata=admin
        )
        with grpc.insecure_channel(world.deployer_addr) as dchannel:
            deployer = deployer_pb2_grpc.DeployerServiceStub(dchannel)
            updates = list(
                deployer.Promote(
                    deployer_pb2.PromoteRequest(app="stable", release_id=built.release.id),
                    metadata=admin,
                )
            )
        user = auth_pb2_grpc.TokenServiceStub(channel).CreateToken(
            auth_pb2.CreateTokenRequest(name="fuzzer", kind="user"), metadata=admin
        )
    finally:
        channel.close()
    pools = {
        "app": ["stable", "other", "x", "Bad_Name", ""],
        "id": [
            built.release.id,
            changed.release.id,
            built.build.id,
            updates[0].deployment.id,
            "RAAAAAAAAAA",
            "BAAAAAAAAAA",
            "DAAAAAAAAAA",
            "r1",
        ],
        "token_name": ["admin", "deployer", "fuzzer", "ci-bot", "Bad Name", ""],
        "kind": ["user", "service", "admin", "root", ""],
        "outcome": ["running", "succeeded", "rolled-back", "failed", "cancelled", "bogus", ""],
        "manifest": [manifest(1), manifest(2, ("web", "worker")), "services: [", ""],
        "token": [world.admin] * 6 + [user.secret, generate(), ""],
    }
    f = Fuzz(world, user.secret, pools)
    try:
        yield f
    finally:
        f.close()
        bg.run(world.stop())
        bg.close()


def text_for(field: FieldDescriptor, pools: dict[str, list[str]]) -> st.SearchStrategy[str]:
    name = field.name
    owner = field.containing_type.name if field.containing_type is not None else ""
    if name == "app" or (name == "name" and owner.endswith("AppRequest")):
        pool = pools["app"]
    elif name == "name":
        pool = pools["token_name"]
    elif name == "kind":
        pool = pools["kind"]
    elif name == "outcome":
        pool = pools["outcome"]
    elif name == "manifest":
        pool = pools["manifest"]
    elif name == "id" or name.endswith("_id") or name.endswith("_from") or name.endswith("_of"):
        pool = pools["id"]
    else:
        pool = []
    arbitrary = st.text(max_size=40)
    return st.one_of(st.sampled_from(pool), arbitrary) if pool else arbitrary


def scalar_for(field: FieldDescriptor, pools: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return text_for(field, pools)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_ENUM):
        return st.one_of(st.integers(-5, 700), st.integers(-(2**31), 2**31 - 1))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.one_of(st.integers(-5, 100), st.integers(-(2**63), 2**63 - 1))
    raise AssertionError(f"no strategy for field {field.full_name} of type {t}")


def request_strategy(descriptor: Descriptor, pools: dict[str, list[str]]) -> st.SearchStrategy:
    """Requests of ``descriptor`` with every field drawn (or left unset)."""
    cls: Any = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            keys = st.one_of(
                st.sampled_from(["web", "worker", "A", "FOO", "RELMAN_X"]), st.text(max_size=12)
            )
            fields[field.name] = st.dictionaries(keys, scalar_for(value, pools), max_size=4)
            assert key.type == FieldDescriptor.TYPE_STRING
        elif field.message_type is not None:
            raise AssertionError(f"no strategy for message field {field.full_name}")
        elif field.is_repeated:
            fields[field.name] = st.lists(scalar_for(field, pools), max_size=4)
        else:
            fields[field.name] = scalar_for(field, pools)
    optional = {name: st.one_of(st.none(), s) for name, s in fields.items()}
    return st.fixed_dictionaries(optional).map(
        lambda values: cls(**{k: v for k, v in values.items() if v is not None})
    )


def invoke(
    channel: grpc.Channel, service: ServiceDescriptor, name: str, request: Any, md: Any
) -> grpc.StatusCode:
    method = service.methods_by_name[name]
    response_cls: Any = message_factory.GetMessageClass(method.output_type)
    path = f"/{service.full_name}/{name}"
    kwargs = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path, **kwargs)(request, metadata=md, timeout=60):
                pass
        else:
            channel.unary_unary(path, **kwargs)(request, metadata=md, timeout=60)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


def fuzz_rpc(f: Fuzz, channel: grpc.Channel, service: ServiceDescriptor, name: str) -> None:
    method = service.methods_by_name[name]
    requests = request_strategy(method.input_type, f.pools)
    metadata = st.builds(
        lambda token, actor: call_metadata(token, actor),
        st.sampled_from(f.pools["token"]),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    )

    @settings(
        max_examples=CASES_PER_RPC,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests, md=metadata)
    def check(request: Any, md: Any) -> None:
        if name in ("DeleteApp",) and request.name in PROTECTED:
            request.name = "victim"
        if name == "RevokeToken" and request.name in PROTECTED:
            request.name = "ci-bot"
        # An earlier accepted Promote or Rollback goes on writing its deployment in the
        # background; compare snapshots only once nothing is running.
        wait_for(f.world.settled, timeout=120, what="background deployments to end")
        before = f.world.snapshot()
        code = invoke(channel, service, name, request, md)
        f.codes[service.name][code.name] += 1
        assert code in DOCUMENTED, (name, request, code)
        if code != grpc.StatusCode.OK:
            assert f.world.snapshot() == before, f"refused {name} wrote: {request}"
            f.unchanged_checks += 1

    check()


def run_service(f: Fuzz, service: ServiceDescriptor, channel: grpc.Channel) -> None:
    for name in service.methods_by_name:
        fuzz_rpc(f, channel, service, name)
    cases = sum(f.codes[service.name].values())
    assert cases >= CASES_PER_RPC * len(service.methods), cases
    codes = ", ".join(f"{k} {v}" for k, v in sorted(f.codes[service.name].items()))
    figure(
        f"bad-inputs-{service.name}",
        f"{cases} generated calls over {len(service.methods)} RPCs -> {codes}; "
        "0 INTERNAL/UNKNOWN, refused calls wrote nothing",
        cases=cases,
        rpcs=len(service.methods),
        codes=dict(f.codes[service.name]),
    )


def test_generated_release_service_calls_get_only_documented_codes_and_refusals_write_nothing(
    fuzz: Fuzz,
) -> None:
    run_service(fuzz, RELEASE, fuzz.release)


def test_generated_token_service_calls_get_only_documented_codes_and_refusals_write_nothing(
    fuzz: Fuzz,
) -> None:
    run_service(fuzz, TOKENS, fuzz.release)


def test_generated_deployer_calls_get_only_documented_codes_and_refusals_write_nothing(
    fuzz: Fuzz,
) -> None:
    run_service(fuzz, DEPLOYER, fuzz.deployer)
