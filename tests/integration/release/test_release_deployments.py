"""The calls the Deployer makes — GetDeployable, CreateRollbackRelease, ReportDeployment — over
real gRPC with the real store, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from relman.v1 import release_pb2 as pb
from relman.v1 import types_pb2
from relman_common.grpc_errors import error_details

from .calls import (
    Code,
    Stub,
    activate,
    expect,
    import_build,
    make_app,
    next_start,
    refused,
    report,
    set_env,
)
from .conftest import ReleaseServer

RUNNING = types_pb2.OUTCOME_RUNNING
SUCCEEDED = types_pb2.OUTCOME_SUCCEEDED
FAILED = types_pb2.OUTCOME_FAILED
ROLLED_BACK = types_pb2.OUTCOME_ROLLED_BACK

TWO_SERVICES = """\
environment: [NAME=world, GREETING=hello]
release:
  command: [bin/migrate, --all]
services:
  web:
    image: registry.example/web:manifest
    port: 5000
    environment: [WORKERS=2]
  worker:
    image: registry.example/worker:manifest
"""


async def deployable(stub: Stub, release_id: str = "") -> pb.Deployable:
    return await stub.GetDeployable(pb.GetDeployableRequest(app="myapp", release_id=release_id))


async def app_state(stub: Stub) -> pb.App:
    return await stub.GetApp(pb.GetAppRequest(name="myapp"))


# --- GetDeployable ---------------------------------------------------------------------------


async def test_deployable_resolves_images_env_defaults_and_the_release_command(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    await set_env(release_stub, NAME="relman")
    first = await import_build(
        release_stub, manifest=TWO_SERVICES, images={"web": "registry.example/myapp:web.B1"}
    )

    got = await deployable(release_stub, first.release.id)
    web, worker = got.services
    # The build's image wins over the manifest's image:; without one, image: is used.
    assert (web.name, web.image) == ("web", "registry.example/myapp:web.B1")
    assert (worker.name, worker.image) == ("worker", "registry.example/worker:manifest")
    # Defaults only for the keys the release's env lacks: its NAME wins.
    assert dict(web.env_defaults) == {"GREETING": "hello", "WORKERS": "2"}
    assert dict(worker.env_defaults) == {"GREETING": "hello"}
    assert dict(got.release.env) == {"NAME": "relman"}
    # The release command runs in the first service by default, for ten minutes at most.
    assert got.release_command == types_pb2.ReleaseCommand(
        command=["bin/migrate", "--all"], service="web", timeout_seconds=600
    )
    # Nothing is active yet.
    assert not got.HasField("active_release")
    assert list(got.active_services) == []

    await activate(release_stub, first.release.id)
    second = await import_build(release_stub)  # the one-service MANIFEST, no release command
    got = await deployable(release_stub)  # the latest release by default
    assert got.release.id == second.release.id
    assert [s.name for s in got.services] == ["web"]
    assert not got.HasField("release_command")
    assert got.active_release.id == first.release.id
    assert got.active_release.status == pb.RELEASE_STATUS_ACTIVE
    assert dict(got.active_release.env) == {"NAME": "relman"}
    # What a rollback restores: the active release's services, images resolved.
    assert [(s.name, s.image) for s in got.active_services] == [
        ("web", "registry.example/myapp:web.B1"),
        ("worker", "registry.example/worker:manifest"),
    ]
    assert dict(got.active_services[0].env_defaults) == {"GREETING": "hello", "WORKERS": "2"}


async def test_a_release_that_cannot_be_deployed_is_refused(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    env_only = await set_env(stub, A="1")
    empty = await import_build(stub, manifest="", images={})
    no_services = await import_build(stub, manifest="services: {}\n", images={})
    needs_env = await import_build(
        stub,
        manifest="environment: [DATABASE_URL, MODE=prod]\nservices:\n  web:\n    build: .\n"
        "    environment: [SECRET_KEY]\n",
    )
    before = release_server.snapshot()

    for release in (env_only.release, empty.release, no_services.release):
        err = await refused(Code.FAILED_PRECONDITION, deployable(stub, release.id))
        assert err.details() == "can not promote a release with an empty manifest"
        assert error_details(err) == ("EMPTY_MANIFEST", "")
    err = await refused(Code.FAILED_PRECONDITION, deployable(stub, needs_env.release.id))
    assert err.details() == (
        f"release {needs_env.release.id} can not be deployed: the manifest requires env "
        "DATABASE_URL, SECRET_KEY (set with: relman env set)"
    )
    assert error_details(err) == ("ENV_REQUIRED", "")
    assert release_server.snapshot() == before

    # Once the env has the keys (an empty value counts), the release can be deployed.
    fixed = await stub.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"DATABASE_URL": "postgres://db", "SECRET_KEY": ""})
    )
    got = await deployable(stub, fixed.release.id)
    assert dict(got.services[0].env_defaults) == {"MODE": "prod"}


async def test_deployable_lookups_are_scoped_and_checked(release_stub: Stub) -> None:
    await make_app(release_stub)
    await make_app(release_stub, "other")
    theirs = await import_build(release_stub, "other")
    msg = await expect(Code.NOT_FOUND, deployable(release_stub, theirs.release.id))
    assert msg == f"release {theirs.release.id} not found in app myapp"
    msg = await expect(Code.NOT_FOUND, deployable(release_stub, "RXXXXXXXXXX"))
    assert msg == "release not found: RXXXXXXXXXX"
    msg = await expect(Code.INVALID_ARGUMENT, deployable(release_stub, "R1"))
    assert msg.startswith('invalid release id "R1"')
    msg = await expect(
        Code.NOT_FOUND, release_stub.GetDeployable(pb.GetDeployableRequest(app="ghost"))
    )
    assert msg == "app not found: ghost"


# --- CreateRollbackRelease -------------------------------------------------------------------


async def test_a_rollback_copy_is_a_deployable_with_the_app_s_active_release(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    old = await import_build(release_stub, manifest=TWO_SERVICES, images={})
    new = await import_build(release_stub)
    await activate(release_stub, new.release.id)
    got = await release_stub.CreateRollbackRelease(
        pb.CreateRollbackReleaseRequest(app="myapp", release_id=old.release.id)
    )
    assert got.release.description == f"rollback to {old.release.id}"
    assert got.release.build_id == old.build.id
    assert [s.name for s in got.services] == ["web", "worker"]
    assert got.release_command.command == ["bin/migrate", "--all"]
    assert got.active_release.id == new.release.id
    assert [s.name for s in got.active_services] == ["web"]
    # The copy is the app's latest release, not yet its active one.
    app = await app_state(release_stub)
    assert (app.latest_release_id, app.active_release_id) == (got.release.id, new.release.id)


async def test_a_rollback_to_a_release_that_cannot_be_deployed_makes_nothing(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    env_only = await set_env(stub, A="1")
    empty = await import_build(stub, manifest="", images={})
    needs_env = await import_build(
        stub, manifest="environment: [SECRET]\nservices:\n  web:\n    build: .\n"
    )
    before = release_server.snapshot()
    for release, reason in [
        (env_only.release, "EMPTY_MANIFEST"),
        (empty.release, "EMPTY_MANIFEST"),
        (needs_env.release, "ENV_REQUIRED"),
    ]:
        err = await refused(
            Code.FAILED_PRECONDITION,
            stub.CreateRollbackRelease(
                pb.CreateRollbackReleaseRequest(app="myapp", release_id=release.id)
            ),
        )
        assert error_details(err) == (reason, "")
    assert release_server.snapshot() == before


# --- ReportDeployment ------------------------------------------------------------------------


async def test_success_of_the_current_deployment_activates_its_release(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    old = (await import_build(stub)).release
    await activate(stub, old.id)
    new = (await import_build(stub)).release

    started = next_start()
    running = await report(stub, new.id, "DBBBBBBBBBB", RUNNING, started)
    assert running.current
    assert running.release.status == pb.RELEASE_STATUS_PROMOTING
    assert (await app_state(stub)).active_release_id == old.id

    done = await report(stub, new.id, "DBBBBBBBBBB", SUCCEEDED, started, reason="all healthy")
    assert done.current
    assert done.release.status == pb.RELEASE_STATUS_ACTIVE
    assert (done.release.last_deployment_id, done.release.last_deployment_outcome) == (
        "DBBBBBBBBBB",
        SUCCEEDED,
    )
    assert (await app_state(stub)).active_release_id == new.id
    got = await stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=old.id))
    assert got.status == pb.RELEASE_STATUS_UNSPECIFIED  # superseded


async def test_a_late_report_of_an_older_deployment_changes_nothing(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    first = (await import_build(stub)).release
    second = (await import_build(stub)).release
    t1 = next_start()
    t2 = next_start()
    await report(stub, first.id, "DAAAAAAAAAA", RUNNING, t1)
    await report(stub, second.id, "DBBBBBBBBBB", RUNNING, t2)  # started later: now current
    before = release_server.snapshot()

    # The first deployment's success arrives after the second one started.
    late = await report(stub, first.id, "DAAAAAAAAAA", SUCCEEDED, t1)
    assert not late.current
    assert late.release.id == first.id
    assert late.release.last_deployment_outcome == RUNNING
    # A deployment never heard of, started before the current one: late as well.
    older = await report(stub, first.id, "DZZZZZZZZZZ", SUCCEEDED, t1 - timedelta(seconds=5))
    assert not older.current
    assert release_server.snapshot() == before
    assert (await app_state(stub)).active_release_id == ""

    # The current deployment's reports still count.
    done = await report(stub, second.id, "DBBBBBBBBBB", SUCCEEDED, t2)
    assert done.current and done.release.status == pb.RELEASE_STATUS_ACTIVE
    assert (await app_state(stub)).active_release_id == second.id


async def test_an_ended_deployment_stays_ended(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    rel = (await import_build(stub)).release
    started = next_start()
    await report(stub, rel.id, "DAAAAAAAAAA", SUCCEEDED, started)
    before = release_server.snapshot()
    # A RUNNING report (a retry sent before the end) after SUCCEEDED changes nothing.
    late = await report(stub, rel.id, "DAAAAAAAAAA", RUNNING, started)
    assert late.current
    assert late.release.status == pb.RELEASE_STATUS_ACTIVE
    assert late.release.last_deployment_outcome == SUCCEEDED
    # Nor does another ending.
    other = await report(stub, rel.id, "DAAAAAAAAAA", ROLLED_BACK, started)
    assert other.release.last_deployment_outcome == SUCCEEDED
    assert release_server.snapshot() == before

    # A failed deployment does not become a success either.
    failing = (await import_build(stub)).release
    started = next_start()
    await report(stub, failing.id, "DBBBBBBBBBB", FAILED, started)
    before = release_server.snapshot()
    late = await report(stub, failing.id, "DBBBBBBBBBB", SUCCEEDED, started)
    assert late.release.status == pb.RELEASE_STATUS_FAILED
    assert release_server.snapshot() == before
    assert (await app_state(stub)).active_release_id == rel.id


async def test_a_rolled_back_deployment_leaves_the_active_release_active(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    good = (await import_build(release_stub)).release
    await activate(release_stub, good.id)
    bad = (await import_build(release_stub)).release
    started = next_start()
    await report(release_stub, bad.id, "DBBBBBBBBBB", RUNNING, started)
    ended = await report(
        release_stub, bad.id, "DBBBBBBBBBB", ROLLED_BACK, started, reason="web crashed"
    )
    assert ended.current
    assert ended.release.status == pb.RELEASE_STATUS_FAILED
    got = await deployable(release_stub, bad.id)
    assert got.active_release.id == good.id
    listed = await release_stub.ListReleases(pb.ListReleasesRequest(app="myapp"))
    assert [(r.id, r.status) for r in listed.releases] == [
        (bad.id, pb.RELEASE_STATUS_FAILED),
        (good.id, pb.RELEASE_STATUS_ACTIVE),
    ]


async def test_reports_about_unknown_or_malformed_things_are_refused(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    await make_app(stub, "other")
    mine = (await import_build(stub)).release
    theirs = (await import_build(stub, "other")).release
    before = release_server.snapshot()
    msg = await expect(Code.NOT_FOUND, report(stub, "RXXXXXXXXXX", "DAAAAAAAAAA", RUNNING))
    assert msg == "release not found: RXXXXXXXXXX"
    msg = await expect(Code.NOT_FOUND, report(stub, theirs.id, "DAAAAAAAAAA", RUNNING))
    assert msg == f"release {theirs.id} not found in app myapp"
    msg = await expect(Code.NOT_FOUND, report(stub, mine.id, "DAAAAAAAAAA", RUNNING, app="ghost"))
    assert msg == "app not found: ghost"
    for deployment_id in ["D1", "nope", "dAAAAAAAAAA", "DAAAAAAAAAAA"]:
        err = await refused(Code.INVALID_ARGUMENT, report(stub, mine.id, deployment_id, RUNNING))
        assert err.details() == (
            f'invalid deployment id "{deployment_id}": ids are D followed by 10 capital letters '
            "(e.g. DBCDEFGHIJK)"
        )
        assert error_details(err) == ("INVALID_ID", "deployment_id")
    err = await refused(Code.INVALID_ARGUMENT, report(stub, "R1", "DAAAAAAAAAA", RUNNING))
    assert error_details(err) == ("INVALID_ID", "release_id")
    assert release_server.snapshot() == before
