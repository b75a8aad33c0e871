"""Generated inputs to every RPC of ReleaseService, TokenService and DeployerService: only the
documented status codes come back (never INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED), every
refusal says why in a short message, and a refused call writes nothing.

Requests are built from each RPC's message descriptor, so a new RPC or field is covered without
touching this file. String fields draw from names and ids that exist (so many calls get past
validation and hit NOT_FOUND / FAILED_PRECONDITION / OK paths), from arbitrary text, from those
names and ids with a NUL byte inside, and from 100 KB values; enum fields from their values and
from numbers no enum has; timestamps from the whole int64 range. A few fixed requests are sent
besides (Fuzz.examples): the answers of the Deployer's calls (GetDeployable and
CreateRollbackRelease: a Deployable, EMPTY_MANIFEST, ENV_REQUIRED; ReportDeployment) and inputs
that once broke a call, so that every run covers them.

What issue 14 measured as bugs (a NUL byte in an id, 100 KB names: INTERNAL or
RESOURCE_EXHAUSTED, and messages quoting whole inputs) is also sent field by field: every
string field of every RPC gets those values one at a time (test_nul_bytes_and_100_kb_...).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from relman.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    deployer_pb2,
    deployer_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
    types_pb2,
)
from relman_common.auth import call_metadata
from relman_common.errors import INVALID_ID, INVALID_NAME
from relman_common.grpc_errors import error_details
from relman_common.tokens import generate
from relman_common.vocabulary import DEPLOYMENT, new_id
from support.deployer import manifest
from support.helpers import wait_for
from support.inproc import World
from support.reliability import db_kind, figure
from support.rpcs import BUILD_SERVICE, RELEASE_PROCESS

pytestmark = pytest.mark.xdist_group("reliability-fuzz")

# RESOURCE_EXHAUSTED is documented for uploads only (BuildService): none of these RPCs may
# answer it, nor INTERNAL or UNKNOWN.
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
# Messages quote at most ~100 characters of any input (release.proto): a refusal stays short.
MAX_MESSAGE_CHARS = 300
CASES_PER_RPC = 182  # x 28 RPCs = 5,096 cases
HUGE = 100 * 1024  # a 100 KB value
RELEASE = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"]
TOKENS = auth_pb2.DESCRIPTOR.services_by_name["TokenService"]
DEPLOYER = deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"]
# Names whose deletion or revocation would end the run's ability to call at all, or to reach
# the answers the examples are there for.
PROTECTED = {"admin", "deployer", "fuzzer", "stable", "bare", "needy"}
# Env keys as long as a key may be (253): valid, and each too long to be quoted whole.
LONG_KEYS = [c * 250 for c in "KLMN"]
# A manifest whose releases can not be deployed until the env has the four LONG_KEYS.
NEEDS_ENV = f"environment: [{', '.join(LONG_KEYS)}]\n" + manifest(1)
# Manifests YAML reads but no number, date or depth can be made of (issue 14 style).
UNREADABLE = [
    "services:\n  web:\n    image: x\n    port: " + "9" * 5000 + "\n",
    "services:\n  web:\n    image: 2001-13-45\n",
    "services: " + "[" * 50_000 + "]" * 50_000 + "\n",
]


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


@dataclass
class Answer:
    code: grpc.StatusCode
    message: str = ""
    reason: str = ""
    field: str = ""

    @property
    def label(self) -> str:
        """The code, and the ErrorInfo reason when it says more (FAILED_PRECONDITION/...)."""
        if self.reason and self.reason != self.code.name:
            return f"{self.code.name}/{self.reason}"
        return self.code.name


@dataclass
class Tally:
    """Status codes and the longest message of a refusal, per service."""

    codes: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    longest: collections.Counter[str] = field(default_factory=collections.Counter)
    # Per RPC: answers by Answer.label.
    answers: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )

    def add(self, service: str, rpc: str, answer: Answer) -> None:
        self.codes[service][answer.code.name] += 1
        self.longest[service] = max(self.longest[service], len(answer.message))
        self.answers[rpc][answer.label] += 1


class Fuzz:
    """The services, the names and ids that exist, and a tally of status codes."""

    def __init__(
        self,
        world: World,
        pools: dict[str, list[str]],
        base: dict[str, str],
        examples: dict[str, list[Any]],
    ) -> None:
        self.world = world
        self.pools = pools
        self.base = base  # a valid value of each id and name field (see base_request)
        # Requests each RPC is always sent too (with the admin token), besides generated ones.
        self.examples = examples
        self.admin = call_metadata(world.admin, "alice")
        self.release = grpc.insecure_channel(world.release_addr)
        self.deployer = grpc.insecure_channel(world.deployer_addr)
        self.tally = Tally()

    def close(self) -> None:
        self.release.close()
        self.deployer.close()


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with fuzzing(f"sqlite:///{tmp / 'relman.db'}", tmp / "data") as f:
        yield f


@contextmanager
def fuzzing(db_url: str, data_dir: Path) -> Iterator[Fuzz]:
    """Both services on ``db_url`` with the apps, builds, releases, deployment and tokens the
    generated calls name (tests/integration/reliability runs this suite on PostgreSQL)."""
    bg = Background()
    world = bg.run(World(db_url, data_dir, pod_delay=0.0).start())
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
        # GetDeployable's and CreateRollbackRelease's refusals: an app whose only release has
        # no build (EMPTY_MANIFEST) and one whose manifest requires env it lacks (ENV_REQUIRED).
        stub.CreateApp(release_pb2.CreateAppRequest(name="bare"), metadata=admin)
        bare = stub.ChangeEnv(
            release_pb2.ChangeEnvRequest(app="bare", set={"A": "1"}), metadata=admin
        )
        stub.CreateApp(release_pb2.CreateAppRequest(name="needy"), metadata=admin)
        needy = stub.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="needy", manifest=NEEDS_ENV, images={"web": "registry.example/web:1"}
            ),
            metadata=admin,
        )
        user = auth_pb2_grpc.TokenServiceStub(channel).CreateToken(
            auth_pb2.CreateTokenRequest(name="fuzzer", kind=auth_pb2.TOKEN_KIND_USER),
            metadata=admin,
        )
    finally:
        channel.close()
    deployment_id = updates[0].deployment.id
    pools = {
        "app": ["stable", "bare", "needy", "other", "x", "Bad_Name", ""],
        "id": [
            built.release.id,
            changed.release.id,
            built.build.id,
            deployment_id,
            bare.release.id,
            needy.release.id,
            needy.build.id,
            "RAAAAAAAAAA",
            "BAAAAAAAAAA",
            "DAAAAAAAAAA",
            "r1",
        ],
        "token_name": ["admin", "deployer", "fuzzer", "ci-bot", "Bad Name", ""],
        "manifest": [
            manifest(1),
            manifest(2, ("web", "worker")),
            NEEDS_ENV,
            "services: {}\n",
            "services: [",
            "",
            *UNREADABLE,
        ],
        "env_key": ["A", "FOO", "RELMAN_X", *LONG_KEYS],
        "token": [world.admin] * 6 + [user.secret, generate(), ""],
    }
    base = {
        "release": built.release.id,
        "other_release": changed.release.id,
        "build": built.build.id,
        "deployment": deployment_id,
    }
    now = Timestamp()
    now.GetCurrentTime()
    earlier = Timestamp(seconds=now.seconds - 3600)
    report = release_pb2.ReportDeploymentRequest
    stable_release, deployed, older = built.release.id, new_id(DEPLOYMENT), new_id(DEPLOYMENT)
    image = {"web": "registry.example/web:1"}
    examples: dict[str, list[Any]] = {
        # Manifests no value can be read from (INTERNAL before), and unknown services with
        # long names (a message naming them all).
        "ImportBuild": [
            release_pb2.ImportBuildRequest(app="stable", manifest=text, images=image)
            for text in UNREADABLE
        ]
        + [
            release_pb2.ImportBuildRequest(
                app="stable", manifest=manifest(1), images={**image, **{k: "x" for k in keys}}
            )
            for keys in (LONG_KEYS, [c * HUGE for c in "abcd"])
        ],
        # Unsetting keys that are not set: the message names them. A long key's NUL value:
        # the message names the key (once whole, 302 characters).
        "ChangeEnv": [
            release_pb2.ChangeEnvRequest(app="stable", unset=LONG_KEYS),
            release_pb2.ChangeEnvRequest(app="stable", set={LONG_KEYS[0]: "\x00"}),
        ],
        # OK with a Deployable, FAILED_PRECONDITION EMPTY_MANIFEST and ENV_REQUIRED.
        # (Named releases: the apps' latest releases change as the generated calls run.)
        "GetDeployable": [
            release_pb2.GetDeployableRequest(app=app, release_id=rid)
            for app, rid in (
                ("stable", stable_release),
                ("bare", bare.release.id),
                ("needy", needy.release.id),
            )
        ],
        "CreateRollbackRelease": [
            release_pb2.CreateRollbackReleaseRequest(app=app, release_id=rid)
            for app, rid in (
                ("stable", stable_release),
                ("bare", bare.release.id),
                ("needy", needy.release.id),
            )
        ],
        # A current deployment's outcome, the same deployment RUNNING again after it (changes
        # nothing), an older deployment (not current), and no outcome at all.
        "ReportDeployment": [
            report(
                deployment_id=deployment,
                app="stable",
                release_id=stable_release,
                outcome=outcome,
                started=started,
            )
            for deployment, outcome, started in (
                (deployed, types_pb2.OUTCOME_SUCCEEDED, now),
                (deployed, types_pb2.OUTCOME_RUNNING, now),
                (older, types_pb2.OUTCOME_FAILED, earlier),
                (deployed, types_pb2.OUTCOME_UNSPECIFIED, now),
            )
        ],
    }
    f = Fuzz(world, pools, base, examples)
    try:
        yield f
    finally:
        f.close()
        bg.run(world.stop())
        bg.close()


# --- what a field holds ----------------------------------------------------------------------

APP, TOKEN_NAME, ID, MANIFEST, ENV_KEY, TEXT = (
    "app",
    "token_name",
    "id",
    "manifest",
    "env_key",
    "text",
)


def role(field: FieldDescriptor) -> str:
    """What a string field of a request holds: an app name, a token name, an id, a manifest,
    or other text."""
    name = field.name
    owner = field.containing_type.name if field.containing_type is not None else ""
    if name == "app" or (name == "name" and owner.endswith("AppRequest")):
        return APP
    if name == "name":
        return TOKEN_NAME
    if name == "manifest":
        return MANIFEST
    if name == "unset":
        return ENV_KEY
    if name == "id" or name.endswith("_id") or name.endswith("_from") or name.endswith("_of"):
        return ID
    return TEXT


def with_nul(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``values`` with a NUL byte put somewhere in them (or alone)."""
    return st.tuples(values, st.integers(0, 12)).map(lambda v: v[0][: v[1]] + "\x00" + v[0][v[1] :])


def huge(role_: str) -> st.SearchStrategy[str]:
    """100 KB values; for names and ids, ones that look right but for their length."""
    plain = ["a" * HUGE, "A" * HUGE, "é" * (HUGE // 2)]
    shaped = {APP: ["app-" + "a" * HUGE], TOKEN_NAME: ["ci-" + "a" * HUGE], ID: ["R" * HUGE]}
    return st.sampled_from(shaped.get(role_, []) + plain)


def text_for(field: FieldDescriptor, pools: dict[str, list[str]]) -> st.SearchStrategy[str]:
    kind = role(field)
    pool = pools.get(kind, [])
    arbitrary = st.text(max_size=40)
    if not pool:
        return st.one_of(arbitrary, arbitrary, with_nul(arbitrary), huge(kind))
    known = st.sampled_from(pool)
    return st.one_of(known, known, arbitrary, with_nul(known), huge(kind))


def enum_for(field: FieldDescriptor) -> st.SearchStrategy[int]:
    """The enum's values, and numbers it does not have (a newer or broken peer)."""
    values = [v.number for v in field.enum_type.values]
    return st.one_of(
        st.sampled_from(values),
        st.sampled_from(values),
        st.integers(-5, 700),
        st.integers(-(2**31), 2**31 - 1),
    )


def timestamp_strategy() -> st.SearchStrategy[Timestamp]:
    """Times now-ish, anywhere in the valid range (years 1-9999), and out of it."""
    first, last = -62_135_596_800, 253_402_300_799  # 0001-01-01, 9999-12-31T23:59:59
    valid_seconds = st.one_of(st.sampled_from([first, last]), st.integers(first, last))
    return st.builds(
        Timestamp,
        seconds=st.one_of(
            st.integers(1_600_000_000, 2_000_000_000),
            valid_seconds,
            st.integers(-(2**63), 2**63 - 1),
        ),
        nanos=st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1)),
    )


def scalar_for(field: FieldDescriptor, pools: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return text_for(field, pools)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        return enum_for(field)
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.one_of(st.integers(-5, 700), st.integers(-(2**31), 2**31 - 1))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.one_of(st.integers(-5, 100), st.integers(-(2**63), 2**63 - 1))
    if (
        t == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.full_name == Timestamp.DESCRIPTOR.full_name
    ):
        return timestamp_strategy()
    raise AssertionError(f"no strategy for field {field.full_name} of type {t}")


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def request_strategy(descriptor: Descriptor, pools: dict[str, list[str]]) -> st.SearchStrategy:
    """Requests of ``descriptor`` with every field drawn (or left unset)."""
    cls: Any = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in descriptor.fields:
        if is_map(f):
            key, value = (
                f.message_type.fields_by_name["key"],
                f.message_type.fields_by_name["value"],
            )
            assert key.type == FieldDescriptor.TYPE_STRING
            keys = st.sampled_from(["web", "worker", *pools["env_key"]])
            keys = st.one_of(keys, keys, st.text(max_size=12), with_nul(keys), huge(TEXT))
            fields[f.name] = st.dictionaries(keys, scalar_for(value, pools), max_size=4)
        elif f.is_repeated:
            fields[f.name] = st.lists(scalar_for(f, pools), max_size=4)
        else:
            fields[f.name] = scalar_for(f, pools)
    optional = {name: st.one_of(st.none(), s) for name, s in fields.items()}
    return st.fixed_dictionaries(optional).map(
        lambda values: cls(**{k: v for k, v in values.items() if v is not None})
    )


# --- calling ---------------------------------------------------------------------------------


def invoke(
    channel: grpc.Channel, service: ServiceDescriptor, name: str, request: Any, md: Any
) -> Answer:
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
        reason, field_ = error_details(err)
        return Answer(err.code(), err.details() or "", reason, field_)  # type: ignore[attr-defined]
    return Answer(grpc.StatusCode.OK)


def checked_call(
    f: Fuzz,
    tally: Tally,
    channel: grpc.Channel,
    service: ServiceDescriptor,
    name: str,
    request: Any,
    md: Any,
) -> Answer:
    """Calls ``name`` once the services are quiet; checks the code, the message's length and
    that a refusal wrote nothing."""
    # An earlier accepted Promote or Rollback goes on writing its deployment in the
    # background; compare snapshots only once nothing is running.
    wait_for(f.world.settled, timeout=120, what="background deployments to end")
    before = f.world.snapshot()
    answer = invoke(channel, service, name, request, md)
    tally.add(service.name, name, answer)
    assert answer.code in DOCUMENTED, (name, answer, str(request)[:500])
    assert len(answer.message) <= MAX_MESSAGE_CHARS, (name, answer.message[:500])
    if answer.code != grpc.StatusCode.OK:
        assert answer.message, (name, answer.code)  # a refusal says why
        assert f.world.snapshot() == before, f"refused {name} wrote: {str(request)[:500]}"
    return answer


# RPCs only a Deployer (a service token) may call.
DEPLOYER_ONLY = frozenset({"ReportDeployment"})


def fuzz_rpc(f: Fuzz, channel: grpc.Channel, service: ServiceDescriptor, name: str) -> None:
    method = service.methods_by_name[name]
    requests = request_strategy(method.input_type, f.pools)
    tokens = f.pools["token"]
    fixed_md = f.admin
    if name in DEPLOYER_ONLY:  # a person's token is refused (PERMISSION_DENIED) first
        deployer = f.world.deployer_token
        tokens = [deployer if t == f.world.admin else t for t in tokens]
        fixed_md = call_metadata(deployer, "alice")
    metadata = st.builds(
        lambda token, actor: call_metadata(token, actor),
        st.sampled_from(tokens),
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
        checked_call(f, f.tally, channel, service, name, request, md)

    for request in f.examples.get(name, []):
        check = example(request=request, md=fixed_md)(check)
    check()


def run_service(f: Fuzz, service: ServiceDescriptor, channel: grpc.Channel) -> None:
    for name in service.methods_by_name:
        fuzz_rpc(f, channel, service, name)
    codes = f.tally.codes[service.name]
    cases = sum(codes.values())
    fixed = sum(len(f.examples.get(name, [])) for name in service.methods_by_name)
    assert cases >= CASES_PER_RPC * len(service.methods), cases
    listed = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    # The Deployer's calls reached their every kind of answer, not only refusals of bad input.
    new_answers = {
        "GetDeployable": {
            "OK",
            "FAILED_PRECONDITION/EMPTY_MANIFEST",
            "FAILED_PRECONDITION/ENV_REQUIRED",
        },
        "CreateRollbackRelease": {
            "OK",
            "FAILED_PRECONDITION/EMPTY_MANIFEST",
            "FAILED_PRECONDITION/ENV_REQUIRED",
        },
        "ReportDeployment": {"OK", "INVALID_ARGUMENT"},
    }
    reached = []
    for rpc, wanted in new_answers.items():
        if rpc in service.methods_by_name:
            got = f.tally.answers[rpc]
            assert wanted <= set(got), (rpc, got)
            shown = ", ".join(f"{k} {v}" for k, v in sorted(got.items()) if "/" in k or k == "OK")
            reached.append(f"{rpc}: {shown}")
    if reached:
        listed += " (" + "; ".join(reached) + ")"
    figure(
        f"bad-inputs-{service.name}-{db_kind(f.world.db_url)}",
        f"{cases - fixed} generated calls and {fixed} fixed ones over {len(service.methods)} "
        f"RPCs -> {listed}; "
        f"0 INTERNAL/UNKNOWN/RESOURCE_EXHAUSTED, refused calls wrote nothing, longest message "
        f"{f.tally.longest[service.name]} chars (<= {MAX_MESSAGE_CHARS})",
        cases=cases,
        fixed_examples=fixed,
        rpcs=len(service.methods),
        codes=dict(codes),
        longest_message=f.tally.longest[service.name],
    )


def test_every_rpc_of_the_served_services_is_fuzzed(fuzz: Fuzz) -> None:
    """The three services below are every service these in-process servers serve.
    BuildService is served only where builds are configured (the Release service process;
    its refusals are tested with real uploads and builds in tests/integration/release/builds):
    the day these servers serve it, this fails so that its RPCs get generated inputs too."""

    def served(channel: grpc.Channel) -> set[str]:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=10)))
        return {s.name for s in response.list_services_response.service}

    fuzzed = {RELEASE.full_name, TOKENS.full_name, DEPLOYER.full_name}
    api = {s.full_name for s in RELEASE_PROCESS} | {DEPLOYER.full_name}
    both = served(fuzz.release) | served(fuzz.deployer)
    assert api & both == fuzzed, f"served now, fuzz it too: {sorted((api & both) - fuzzed)}"
    assert BUILD_SERVICE.full_name not in both


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


# --- NUL bytes and 100 KB values, field by field --------------------------------------------


def base_request(f: Fuzz, method: Any) -> Any:
    """A request of ``method`` whose ids and names are valid and exist, so that a refusal of
    one bad field is about that field."""
    cls: Any = message_factory.GetMessageClass(method.input_type)
    request = cls()
    for fd in method.input_type.fields:
        kind = role(fd) if fd.type == FieldDescriptor.TYPE_STRING else ""
        if is_map(fd) and fd.name == "images":
            request.images["web"] = "registry.example/web:1"  # what manifest(1) needs
        if fd.is_repeated:
            continue
        if kind == APP:
            setattr(request, fd.name, "stable")
        elif kind == TOKEN_NAME:
            setattr(request, fd.name, "fuzzer")
        elif kind == MANIFEST:
            setattr(request, fd.name, manifest(1))
        elif kind == ID:
            if fd.name == "to_id":
                value = f.base["other_release"]
            elif fd.name == "build_id" or (fd.name == "id" and "Build" in method.name):
                value = f.base["build"]
            elif fd.name == "deployment_id" or (fd.name == "id" and "Deployment" in method.name):
                value = f.base["deployment"]
            else:
                value = f.base["release"]
            setattr(request, fd.name, value)
        elif fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type.full_name == "relman.v1.Outcome":
            setattr(request, fd.name, types_pb2.OUTCOME_SUCCEEDED)
        elif (
            fd.message_type is not None
            and fd.message_type.full_name == Timestamp.DESCRIPTOR.full_name
        ):
            getattr(request, fd.name).GetCurrentTime()
    return request


def bad_values(kind: str, good: str) -> dict[str, str]:
    """NUL bytes at the end, inside and alone, and a 100 KB value (for names and ids, one that
    has the right characters and only the wrong length)."""
    good = good or "x"
    long = {APP: "a" * HUGE, TOKEN_NAME: "a" * HUGE, ID: good[:1] + "A" * HUGE}.get(
        kind, "a" * HUGE
    )
    return {
        "NUL at the end": good + "\x00",
        "NUL inside": good[:3] + "\x00" + good[3:],
        "NUL alone": "\x00",
        "100 KB": long,
    }


def variants(f: Fuzz, method: Any) -> Iterator[tuple[str, str, str, Any]]:
    """(field, role, what, request) for every string a request of ``method`` carries: the
    field's own value, an item of a repeated field, a key or a value of a map."""
    for fd in method.input_type.fields:
        if is_map(fd):
            good_key = "web" if fd.name == "images" else "A"
            for what, bad in bad_values(TEXT, good_key).items():
                for entry, pair in (("key", (bad, "1")), ("value", (good_key, bad))):
                    request = base_request(f, method)
                    getattr(request, fd.name)[pair[0]] = pair[1]
                    yield fd.name, TEXT, f"{what} in a {entry}", request
        elif fd.type == FieldDescriptor.TYPE_STRING:
            kind = role(fd)
            good = getattr(base_request(f, method), fd.name) if not fd.is_repeated else "A"
            for what, bad in bad_values(kind, good).items():
                request = base_request(f, method)
                if fd.is_repeated:
                    getattr(request, fd.name).append(bad)
                else:
                    setattr(request, fd.name, bad)
                yield fd.name, kind, what, request


def test_nul_bytes_and_100_kb_values_in_any_field_are_refused_as_bad_input_in_few_words(
    fuzz: Fuzz,
) -> None:
    """A NUL byte in any id, name, text, map key or value, and 100 KB names, ids and values:
    never INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED (issue 14), a message of at most 300
    characters, nothing written when refused. A NUL byte anywhere is INVALID_ARGUMENT; so is a
    100 KB name or id. A bad id has reason INVALID_ID naming its field, on both services; a bad
    app or token name INVALID_NAME naming its field. (A 100 KB env value or image reference may be
    accepted: the env limit is 1 MiB.)"""
    f = fuzz
    admin = call_metadata(f.world.admin, "alice")
    deployer = call_metadata(f.world.deployer_token, "alice")
    tally = Tally()
    fields: set[str] = set()
    refused_as_bad_input = 0
    rpcs = sum(len(s.methods) for s in (RELEASE, TOKENS, DEPLOYER))
    for service, channel in ((RELEASE, f.release), (TOKENS, f.release), (DEPLOYER, f.deployer)):
        for method in service.methods:
            for name, kind, what, request in variants(f, method):
                md = deployer if method.name in DEPLOYER_ONLY else admin
                answer = checked_call(f, tally, channel, service, method.name, request, md)
                fields.add(f"{method.name}.{name}")
                where = (method.name, name, what, answer)
                if kind in (APP, ID, TOKEN_NAME) or "NUL" in what:
                    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, where
                if kind == ID:
                    assert (answer.reason, answer.field) == (INVALID_ID, name), where
                if kind in (APP, TOKEN_NAME):
                    assert (answer.reason, answer.field) == (INVALID_NAME, name), where
                refused_as_bad_input += answer.code == grpc.StatusCode.INVALID_ARGUMENT
    calls = sum(sum(c.values()) for c in tally.codes.values())
    codes: collections.Counter[str] = collections.Counter()
    for counter in tally.codes.values():
        codes.update(counter)
    listed = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    figure(
        f"bad-inputs-nul-and-100kb-{db_kind(f.world.db_url)}",
        f"{calls} calls with a NUL byte or a 100 KB value in each of {len(fields)} string "
        f"fields of {rpcs} RPCs -> {listed}; 0 INTERNAL/UNKNOWN/RESOURCE_EXHAUSTED, every NUL "
        "byte INVALID_ARGUMENT, every bad id INVALID_ID and every bad app or token name "
        f"INVALID_NAME naming its field, longest message "
        f"{max(tally.longest.values())} chars, refused calls wrote nothing",
        calls=calls,
        fields=len(fields),
        codes=dict(codes),
        longest_message=max(tally.longest.values()),
        invalid_argument=refused_as_bad_input,
    )
