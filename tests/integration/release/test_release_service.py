"""The Release service over real gRPC with the real store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from relman.v1 import release_pb2 as pb
from relman.v1 import types_pb2
from relman_common import vocabulary
from relman_common.grpc_errors import error_details

from .calls import (
    IMAGES,
    MANIFEST,
    Code,
    Stub,
    activate,
    expect,
    import_build,
    list_all,
    make_app,
    next_start,
    refused,
    report,
    report_request,
    set_env,
)
from .conftest import ReleaseServer

# --- apps ------------------------------------------------------------------------------------


async def test_apps_can_be_created_read_listed_and_deleted(release_stub: Stub) -> None:
    created = await release_stub.CreateApp(
        pb.CreateAppRequest(name="myapp"), metadata=[("x-relman-actor", "alice")]
    )
    assert (created.name, created.actor) == ("myapp", "alice")
    assert created.active_release_id == created.latest_release_id == ""
    assert created.created.seconds > 0
    await make_app(release_stub, "another")

    got = await release_stub.GetApp(pb.GetAppRequest(name="myapp"))
    assert got == created
    listed = await release_stub.ListApps(pb.ListAppsRequest())
    assert [a.name for a in listed.apps] == ["another", "myapp"]

    await release_stub.DeleteApp(pb.DeleteAppRequest(name="myapp"))
    listed = await release_stub.ListApps(pb.ListAppsRequest())
    assert [a.name for a in listed.apps] == ["another"]
    msg = await expect(Code.NOT_FOUND, release_stub.GetApp(pb.GetAppRequest(name="myapp")))
    assert msg == "app not found: myapp"


async def test_app_errors_say_what_is_wrong(release_stub: Stub) -> None:
    await make_app(release_stub)
    msg = await expect(Code.ALREADY_EXISTS, make_app(release_stub))
    assert msg == "app already exists: myapp"
    msg = await expect(Code.INVALID_ARGUMENT, make_app(release_stub, "My_App"))
    assert msg.startswith('invalid app name "My_App"')
    await expect(Code.INVALID_ARGUMENT, make_app(release_stub, ""))
    msg = await expect(Code.NOT_FOUND, release_stub.DeleteApp(pb.DeleteAppRequest(name="ghost")))
    assert msg == "app not found: ghost"


async def test_concurrent_creates_of_one_app_make_exactly_one(release_stub: Stub) -> None:
    results = await asyncio.gather(
        *(make_app(release_stub, "racy") for _ in range(8)), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, pb.App)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(refused) == 7
    assert {r.code() for r in refused} == {Code.ALREADY_EXISTS}


async def test_delete_app_removes_its_builds_and_releases_only(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    for app in ("myapp", "keep"):
        await make_app(stub, app)
        await import_build(stub, app)
        await set_env(stub, app, FOO="bar")
    assert release_server.counts() == {"apps": 2, "builds": 2, "releases": 4}

    await stub.DeleteApp(pb.DeleteAppRequest(name="myapp"))
    assert release_server.counts() == {"apps": 1, "builds": 1, "releases": 2}
    assert len(await list_all(stub, "keep")) == 2
    # The name is free again, and the new app starts empty.
    await make_app(stub, "myapp")
    assert await list_all(stub) == []


# --- builds ----------------------------------------------------------------------------------


async def test_import_build_creates_a_complete_build_and_a_release_with_the_latest_env(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    await set_env(release_stub, FOO="bar", MULTI="a=b\nc")
    resp = await import_build(release_stub, metadata=[("x-relman-actor", "bob")])

    build, release = resp.build, resp.release
    assert vocabulary.looks_like("B", build.id) and vocabulary.looks_like("R", release.id)
    assert build.status == pb.BUILD_STATUS_COMPLETE
    assert build.started.seconds > 0 and build.ended.seconds > 0
    assert (build.app, build.manifest, dict(build.images)) == ("myapp", MANIFEST, IMAGES)
    assert (build.description, build.git_sha, build.actor) == (
        "build 0a1b2c3d4e first",
        "0a1b2c3d4e5f60718293",
        "bob",
    )
    assert release.build_id == build.id
    assert dict(release.env) == {"FOO": "bar", "MULTI": "a=b\nc"}
    assert release.description == "build 0a1b2c3d4e first"
    assert release.actor == "bob"
    assert resp.warning == ""

    assert await release_stub.GetBuild(pb.GetBuildRequest(app="myapp", id=build.id)) == build
    app = await release_stub.GetApp(pb.GetAppRequest(name="myapp"))
    assert app.latest_release_id == release.id


async def test_import_build_for_a_new_app_has_an_empty_env(release_stub: Stub) -> None:
    await make_app(release_stub)
    resp = await import_build(release_stub)
    assert dict(resp.release.env) == {}


async def test_import_build_warns_when_it_would_ship_unpromoted_env_changes(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    first = await import_build(release_stub)
    await activate(release_stub, first.release.id)
    assert (await import_build(release_stub)).warning == ""
    await activate(release_stub, (await list_all(release_stub))[0].id)

    changed = await set_env(release_stub, FOO="bar")
    resp = await import_build(release_stub)
    assert changed.release.id in resp.warning
    assert "unpromoted" in resp.warning


BAD_IMPORTS = [
    (
        "services:\n  web:\n    build: .\n    scale: {count: 0}\n",
        IMAGES,
        Code.INVALID_ARGUMENT,
        "manifest line 4: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (MANIFEST, {}, Code.INVALID_ARGUMENT, "no image given for service web"),
    (
        MANIFEST,
        {**IMAGES, "ghost": "r/g:1"},
        Code.INVALID_ARGUMENT,
        "images given for services not in the manifest: ghost",
    ),
    ("services: [", IMAGES, Code.INVALID_ARGUMENT, "manifest line 1: invalid YAML"),
]


async def test_import_build_refuses_bad_manifests_and_images_and_writes_nothing(
    release_server: ReleaseServer,
) -> None:
    await make_app(release_server.stub)
    before = release_server.snapshot()
    for manifest, images, code, message in BAD_IMPORTS:
        msg = await expect(
            code, import_build(release_server.stub, manifest=manifest, images=images)
        )
        assert msg.startswith(message), msg
    assert release_server.snapshot() == before


async def test_builds_are_listed_newest_first_in_pages(release_stub: Stub) -> None:
    await make_app(release_stub)
    made = [(await import_build(release_stub, description=f"b{i}")).build.id for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        resp = await release_stub.ListBuilds(
            pb.ListBuildsRequest(app="myapp", limit=2, page_token=token)
        )
        seen += [b.id for b in resp.builds]
        token = resp.next_page_token
        if not token:
            break
    assert seen == made[::-1]
    msg = await expect(
        Code.NOT_FOUND, release_stub.GetBuild(pb.GetBuildRequest(app="myapp", id="BXXXXXXXXXX"))
    )
    assert msg == "build not found: BXXXXXXXXXX"


# --- environment -----------------------------------------------------------------------------


async def test_first_env_change_of_an_app_without_build_makes_an_env_only_release(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    resp = await set_env(release_stub, FOO="bar")
    assert resp.changed
    assert resp.description == resp.release.description == "env add:FOO"
    assert resp.release.build_id == ""
    assert dict(resp.release.env) == {"FOO": "bar"}
    assert resp.warning == ""


async def test_env_change_uses_the_latest_release_build_and_describes_the_change(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    await set_env(release_stub, C="1", D="x")
    build = await import_build(release_stub)
    resp = await release_stub.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"B": "2", "A": "1", "C": "3"}, unset=["D"])
    )
    assert resp.description == "env add:A add:B change:C remove:D"
    assert resp.release.build_id == build.build.id
    assert dict(resp.release.env) == {"A": "1", "B": "2", "C": "3"}
    env = await release_stub.GetEnv(pb.GetEnvRequest(app="myapp"))
    assert (dict(env.env), env.release_id) == ({"A": "1", "B": "2", "C": "3"}, resp.release.id)


async def test_env_replace_sets_the_whole_env(release_stub: Stub) -> None:
    await make_app(release_stub)
    await set_env(release_stub, A="1", B="2")
    resp = await release_stub.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"B": "2", "C": "3"}, replace=True)
    )
    assert dict(resp.release.env) == {"B": "2", "C": "3"}
    assert resp.description == "env add:C remove:A"


async def test_env_change_that_changes_nothing_creates_no_release(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    await set_env(stub, FOO="bar")
    before = release_server.snapshot()
    resp = await set_env(stub, FOO="bar")
    assert not resp.changed
    assert not resp.HasField("release")
    assert resp.description == "no change"
    assert release_server.snapshot() == before


async def test_env_change_warns_when_the_latest_build_was_never_promoted(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    first = await import_build(release_stub)
    await activate(release_stub, first.release.id)
    assert (await set_env(release_stub, A="1")).warning == ""

    second = await import_build(release_stub)
    resp = await set_env(release_stub, B="2")
    assert resp.changed
    assert f"unpromoted build {second.build.id}" in resp.warning


async def test_get_env_of_a_given_release_and_of_an_app_without_releases(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    empty = await release_stub.GetEnv(pb.GetEnvRequest(app="myapp"))
    assert (dict(empty.env), empty.release_id) == ({}, "")
    first = await set_env(release_stub, A="1")
    await set_env(release_stub, A="2")
    old = await release_stub.GetEnv(pb.GetEnvRequest(app="myapp", release_id=first.release.id))
    assert dict(old.env) == {"A": "1"}


BAD_ENV_CHANGES = [
    (
        {"set": {"1BAD": "x"}},
        Code.INVALID_ARGUMENT,
        'invalid env key "1BAD": keys start with a letter or _ and hold only letters, digits and _',
    ),
    ({"unset": ["NOPE"]}, Code.INVALID_ARGUMENT, "can not unset NOPE: key is not set"),
    ({"set": {"OK": "1", "A-B": "x"}}, Code.INVALID_ARGUMENT, 'invalid env key "A-B"'),
    ({"set": {"A": "1"}, "unset": ["A"]}, Code.INVALID_ARGUMENT, "key A is both set and unset"),
    (
        {"set": {"A": "1"}, "unset": ["KEEP"], "replace": True},
        Code.INVALID_ARGUMENT,
        "a replace sets the whole env",
    ),
    ({}, Code.INVALID_ARGUMENT, "nothing to change"),
    ({"app": "ghost", "set": {"A": "1"}}, Code.NOT_FOUND, "app not found: ghost"),
    ({"app": "Bad!", "set": {"A": "1"}}, Code.INVALID_ARGUMENT, 'invalid app name "Bad!"'),
]


async def test_bad_env_changes_are_refused_and_write_nothing(
    release_server: ReleaseServer,
) -> None:
    await make_app(release_server.stub)
    await set_env(release_server.stub, KEEP="1")
    before = release_server.snapshot()
    for request_kw, code, message in BAD_ENV_CHANGES:
        request = pb.ChangeEnvRequest(**{"app": "myapp", **request_kw})
        msg = await expect(code, release_server.stub.ChangeEnv(request))
        assert msg.startswith(message), msg
    assert release_server.snapshot() == before


async def test_env_change_never_loses_a_concurrent_key(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    await import_build(stub)
    keys = [f"KEY_{i:02d}" for i in range(30)]
    results = await asyncio.gather(*(set_env(stub, **{key: key.lower()}) for key in keys))

    assert all(r.changed for r in results)
    assert len({r.release.id for r in results}) == 30
    env = await stub.GetEnv(pb.GetEnvRequest(app="myapp"))
    assert dict(env.env) == {key: key.lower() for key in keys}
    assert release_server.counts()["releases"] == 31
    # Each release added exactly one key to the one before it: none was built on a stale env.
    sizes = sorted(len(r.release.env) for r in results)
    assert sizes == list(range(1, 31))


# --- releases --------------------------------------------------------------------------------


async def test_releases_are_listed_newest_first_without_env_with_status(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    first = await import_build(release_stub)
    env = await set_env(release_stub, FOO="bar")
    third = await import_build(release_stub, description="build 1b2c3d4e5f second")
    await activate(release_stub, first.release.id)
    await report(release_stub, env.release.id, "DBBBBBBBBBB", types_pb2.OUTCOME_ROLLED_BACK)
    await report(release_stub, third.release.id, "DCCCCCCCCCC", types_pb2.OUTCOME_RUNNING)

    listed = await list_all(release_stub)
    assert [r.id for r in listed] == [third.release.id, env.release.id, first.release.id]
    assert [r.status for r in listed] == [
        pb.RELEASE_STATUS_PROMOTING,
        pb.RELEASE_STATUS_FAILED,
        pb.RELEASE_STATUS_ACTIVE,
    ]
    assert [r.description for r in listed] == [
        "build 1b2c3d4e5f second",
        "env add:FOO",
        "build 0a1b2c3d4e first",
    ]
    assert all(len(r.env) == 0 for r in listed)
    assert listed[1].last_deployment_id == "DBBBBBBBBBB"
    assert listed[1].last_deployment_outcome == types_pb2.OUTCOME_ROLLED_BACK

    got = await release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=env.release.id))
    assert (dict(got.env), got.status) == ({"FOO": "bar"}, pb.RELEASE_STATUS_FAILED)


async def test_release_listing_pages_have_no_gaps_or_duplicates(release_stub: Stub) -> None:
    await make_app(release_stub)
    made = [(await set_env(release_stub, N=str(i))).release.id for i in range(23)]

    default = await release_stub.ListReleases(pb.ListReleasesRequest(app="myapp"))
    assert [r.id for r in default.releases] == made[::-1][:10]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        resp = await release_stub.ListReleases(
            pb.ListReleasesRequest(app="myapp", limit=7, page_token=token)
        )
        pages += 1
        seen += [r.id for r in resp.releases]
        token = resp.next_page_token
        if not token:
            break
    assert pages == 4
    assert seen == made[::-1]


async def test_a_page_token_stays_valid_when_new_releases_arrive(release_stub: Stub) -> None:
    await make_app(release_stub)
    made = [(await set_env(release_stub, N=str(i))).release.id for i in range(6)]
    first = await release_stub.ListReleases(pb.ListReleasesRequest(app="myapp", limit=3))
    await set_env(release_stub, N="new")
    second = await release_stub.ListReleases(
        pb.ListReleasesRequest(app="myapp", limit=3, page_token=first.next_page_token)
    )
    assert [r.id for r in second.releases] == made[::-1][3:]


async def test_bad_listing_arguments_are_refused(release_stub: Stub) -> None:
    await make_app(release_stub)
    await make_app(release_stub, "other")
    for i in range(3):
        await set_env(release_stub, "other", N=str(i))
    other = await release_stub.ListReleases(pb.ListReleasesRequest(app="other", limit=1))
    for token in ["not-a-token", other.next_page_token]:
        msg = await expect(
            Code.INVALID_ARGUMENT,
            release_stub.ListReleases(pb.ListReleasesRequest(app="myapp", page_token=token)),
        )
        assert msg.startswith("invalid page_token")
    await expect(
        Code.INVALID_ARGUMENT,
        release_stub.ListReleases(pb.ListReleasesRequest(app="myapp", limit=-1)),
    )
    await expect(Code.NOT_FOUND, release_stub.ListReleases(pb.ListReleasesRequest(app="ghost")))


async def test_release_lookups_are_scoped_to_the_app(release_stub: Stub) -> None:
    await make_app(release_stub)
    await make_app(release_stub, "other")
    theirs = await import_build(release_stub, "other")
    msg = await expect(
        Code.NOT_FOUND,
        release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=theirs.release.id)),
    )
    assert msg == f"release {theirs.release.id} not found in app myapp"
    msg = await expect(
        Code.NOT_FOUND, release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id="RXXXXXXXXXX"))
    )
    assert msg == "release not found: RXXXXXXXXXX"
    await expect(
        Code.NOT_FOUND, release_stub.GetBuild(pb.GetBuildRequest(app="myapp", id=theirs.build.id))
    )
    msg = await expect(
        Code.INVALID_ARGUMENT, release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=""))
    )
    assert msg == "release id is required"
    # A malformed id is bad input, whether or not something could have that id.
    for malformed in ["R1", "nope", "rxxxxxxxxxx", "RXXXXXXXXXXX", theirs.build.id]:
        err = await refused(
            Code.INVALID_ARGUMENT,
            release_stub.GetRelease(pb.GetReleaseRequest(app="myapp", id=malformed)),
        )
        assert err.details() == (
            f'invalid release id "{malformed}": ids are R followed by 10 capital letters '
            "(e.g. RBCDEFGHIJK)"
        )
        assert error_details(err) == ("INVALID_ID", "id")
    msg = await expect(
        Code.INVALID_ARGUMENT, release_stub.GetBuild(pb.GetBuildRequest(app="myapp", id="B1"))
    )
    assert msg.startswith('invalid build id "B1"')


async def test_release_manifest_is_its_build_manifest(release_stub: Stub) -> None:
    await make_app(release_stub)
    env_only = await set_env(release_stub, A="1")
    msg = await expect(
        Code.FAILED_PRECONDITION,
        release_stub.GetReleaseManifest(
            pb.GetReleaseManifestRequest(app="myapp", id=env_only.release.id)
        ),
    )
    assert msg == f"no build for release: {env_only.release.id}"
    built = await import_build(release_stub)
    resp = await release_stub.GetReleaseManifest(
        pb.GetReleaseManifestRequest(app="myapp", id=built.release.id)
    )
    assert resp.manifest == MANIFEST


async def test_create_release_from_an_explicit_build_and_env(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    await make_app(stub, "other")
    built = await import_build(stub)
    release = await stub.CreateRelease(
        pb.CreateReleaseRequest(
            app="myapp", build_id=built.build.id, env={"X": "1"}, description="by hand"
        ),
        metadata=[("x-relman-actor", "carol")],
    )
    assert (release.build_id, dict(release.env), release.description, release.actor) == (
        built.build.id,
        {"X": "1"},
        "by hand",
        "carol",
    )
    theirs = await import_build(stub, "other")
    before = release_server.snapshot()
    for request, code in [
        (pb.CreateReleaseRequest(app="myapp", build_id=theirs.build.id), Code.NOT_FOUND),
        (pb.CreateReleaseRequest(app="myapp", build_id="BXXXXXXXXXX"), Code.NOT_FOUND),
        (pb.CreateReleaseRequest(app="myapp", build_id=""), Code.INVALID_ARGUMENT),
        (
            pb.CreateReleaseRequest(app="myapp", build_id=built.build.id, env={"1X": "1"}),
            Code.INVALID_ARGUMENT,
        ),
    ]:
        await expect(code, stub.CreateRelease(request))
    assert release_server.snapshot() == before


async def test_create_from_combines_build_and_env_of_named_or_active_releases(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    old = await import_build(release_stub)  # build B1, env {}
    await activate(release_stub, old.release.id)
    await set_env(release_stub, FOO="bar")
    new_build = await import_build(release_stub)  # build B2, env FOO
    env_source = await set_env(release_stub, FOO="baz", X="y")  # build B2, env FOO=baz X

    cases = [
        (
            pb.CreateReleaseFromRequest(build_from=old.release.id, env_from=env_source.release.id),
            old.build.id,
            {"FOO": "baz", "X": "y"},
        ),
        (
            pb.CreateReleaseFromRequest(
                use_active_release_build=True, env_from=new_build.release.id
            ),
            old.build.id,
            {"FOO": "bar"},
        ),
        (
            pb.CreateReleaseFromRequest(
                build_from=new_build.release.id, use_active_release_env=True
            ),
            new_build.build.id,
            {},
        ),
        (
            pb.CreateReleaseFromRequest(use_active_release_build=True, use_active_release_env=True),
            old.build.id,
            {},
        ),
    ]
    for request, build_id, env in cases:
        request.app = "myapp"
        release = await release_stub.CreateReleaseFrom(request)
        assert (release.build_id, dict(release.env), release.description) == (
            build_id,
            env,
            "created-from",
        )
        assert (await list_all(release_stub, limit=1))[0].id == release.id


async def test_create_from_errors(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    await make_app(stub, "other")
    mine = await import_build(stub)
    theirs = await import_build(stub, "other")
    before = release_server.snapshot()

    def req(**kw: Any) -> pb.CreateReleaseFromRequest:
        return pb.CreateReleaseFromRequest(app="myapp", **kw)

    msg = await expect(Code.INVALID_ARGUMENT, stub.CreateReleaseFrom(req(env_from=mine.release.id)))
    assert msg == "must specify either --build-from or --use-active-release-build"
    msg = await expect(
        Code.INVALID_ARGUMENT,
        stub.CreateReleaseFrom(
            req(build_from=mine.release.id, use_active_release_build=True, env_from=mine.release.id)
        ),
    )
    assert msg == "must specify either --build-from or --use-active-release-build"
    msg = await expect(
        Code.INVALID_ARGUMENT, stub.CreateReleaseFrom(req(build_from=mine.release.id))
    )
    assert msg == "must specify either --env-from or --use-active-release-env"
    msg = await expect(
        Code.FAILED_PRECONDITION,
        stub.CreateReleaseFrom(req(use_active_release_build=True, env_from=mine.release.id)),
    )
    assert "no active release" in msg
    msg = await expect(
        Code.NOT_FOUND,
        stub.CreateReleaseFrom(req(build_from=theirs.release.id, env_from=mine.release.id)),
    )
    assert msg == f"release {theirs.release.id} not found in app myapp"
    env_only = await set_env(stub, "other", A="1")
    before = release_server.snapshot()
    await expect(
        Code.NOT_FOUND,
        stub.CreateReleaseFrom(req(build_from=mine.release.id, env_from=env_only.release.id)),
    )
    assert release_server.snapshot() == before


async def test_diff_shows_build_change_and_env_changes(release_stub: Stub) -> None:
    await make_app(release_stub)
    first = await import_build(release_stub)
    await set_env(release_stub, A="1", B="2", D="4")
    await import_build(release_stub)
    last = await release_stub.ChangeEnv(
        pb.ChangeEnvRequest(app="myapp", set={"B": "3", "C": "5"}, unset=["A", "D"])
    )
    diff = await release_stub.DiffReleases(
        pb.DiffReleasesRequest(app="myapp", from_id=first.release.id, to_id=last.release.id)
    )
    assert diff.build_changed
    assert (diff.from_build_id, diff.to_build_id) == (first.build.id, last.release.build_id)
    assert [(c.key, c.new_value) for c in diff.added] == [("B", "3"), ("C", "5")]
    assert list(diff.changed) == []
    assert list(diff.removed) == []

    mid = (await list_all(release_stub))[1]  # the build after the env set: A, B, D
    diff = await release_stub.DiffReleases(
        pb.DiffReleasesRequest(app="myapp", from_id=mid.id, to_id=last.release.id)
    )
    assert not diff.build_changed
    assert [(c.key, c.old_value, c.new_value) for c in diff.changed] == [("B", "2", "3")]
    assert [(c.key, c.new_value) for c in diff.added] == [("C", "5")]
    assert [(c.key, c.old_value) for c in diff.removed] == [("A", "1"), ("D", "4")]

    # Without ids: from the active release to the latest one.
    await expect(
        Code.FAILED_PRECONDITION, release_stub.DiffReleases(pb.DiffReleasesRequest(app="myapp"))
    )
    await activate(release_stub, mid.id)
    diff = await release_stub.DiffReleases(pb.DiffReleasesRequest(app="myapp"))
    assert (diff.from_id, diff.to_id) == (mid.id, last.release.id)


# --- calls made by the Deployer --------------------------------------------------------------


async def test_deployable_carries_the_release_its_services_and_the_active_release(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    msg = await expect(
        Code.FAILED_PRECONDITION,
        release_stub.GetDeployable(pb.GetDeployableRequest(app="myapp")),
    )
    assert msg == "app myapp has no releases"
    env_only = await set_env(release_stub, A="1")
    err = await refused(
        Code.FAILED_PRECONDITION,
        release_stub.GetDeployable(
            pb.GetDeployableRequest(app="myapp", release_id=env_only.release.id)
        ),
    )
    assert err.details() == "can not promote a release with an empty manifest"
    assert error_details(err) == ("EMPTY_MANIFEST", "")

    first = await import_build(release_stub)
    await activate(release_stub, first.release.id)
    latest = await set_env(release_stub, B="2")
    deployable = await release_stub.GetDeployable(pb.GetDeployableRequest(app="myapp"))
    assert deployable.release.id == latest.release.id
    assert dict(deployable.release.env) == {"A": "1", "B": "2"}
    assert deployable.release.build_id == first.build.id
    (web,) = deployable.services
    assert (web.name, web.image, list(web.command)) == ("web", IMAGES["web"], ["bin/web"])
    assert (web.port.number, web.port.scheme) == (5000, types_pb2.PORT_SCHEME_HTTP)
    assert not deployable.HasField("release_command")
    assert deployable.active_release.id == first.release.id
    assert deployable.active_release.status == pb.RELEASE_STATUS_ACTIVE
    assert [s.name for s in deployable.active_services] == ["web"]


async def test_rollback_release_copies_build_and_env_of_the_old_release(
    release_stub: Stub,
) -> None:
    await make_app(release_stub)
    await set_env(release_stub, A="1")
    old = await import_build(release_stub)
    await import_build(release_stub)
    await set_env(release_stub, A="2")
    deployable = await release_stub.CreateRollbackRelease(
        pb.CreateRollbackReleaseRequest(app="myapp", release_id=old.release.id),
        metadata=[("x-relman-actor", "deployer")],
    )
    copy = deployable.release
    assert copy.id != old.release.id
    assert (copy.build_id, dict(copy.env)) == (old.build.id, {"A": "1"})
    assert copy.description == f"rollback to {old.release.id}"
    assert copy.actor == "deployer"
    assert [(s.name, s.image) for s in deployable.services] == [("web", IMAGES["web"])]
    app = await release_stub.GetApp(pb.GetAppRequest(name="myapp"))
    assert app.latest_release_id == copy.id


async def test_report_deployment_is_idempotent(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    first = await import_build(stub)
    request = report_request(
        first.release.id, "DAAAAAAAAAA", types_pb2.OUTCOME_SUCCEEDED, next_start()
    )
    once = await stub.ReportDeployment(request)
    after_once = release_server.snapshot()
    twice = await stub.ReportDeployment(request)
    assert once == twice
    assert release_server.snapshot() == after_once  # one change, made by the first report
    assert once.current
    assert (once.release.id, once.release.status) == (first.release.id, pb.RELEASE_STATUS_ACTIVE)
    assert once.release.last_deployment_id == "DAAAAAAAAAA"
    assert once.release.last_deployment_outcome == types_pb2.OUTCOME_SUCCEEDED
    app = await stub.GetApp(pb.GetAppRequest(name="myapp"))
    assert app.active_release_id == first.release.id
    msg = await expect(
        Code.NOT_FOUND,
        report(stub, "RXXXXXXXXXX", "DAAAAAAAAAA", types_pb2.OUTCOME_SUCCEEDED),
    )
    assert msg == "release not found: RXXXXXXXXXX"


async def test_deployment_outcomes_drive_the_status(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    rel = (await import_build(stub)).release

    async def deploy(outcome: types_pb2.Outcome.ValueType) -> pb.Release:
        """The release's status after a newly started deployment of it reports ``outcome``."""
        resp = await report(stub, rel.id, vocabulary.new_id(vocabulary.DEPLOYMENT), outcome)
        assert resp.current
        return resp.release

    assert (await deploy(types_pb2.OUTCOME_RUNNING)).status == pb.RELEASE_STATUS_PROMOTING
    assert (await deploy(types_pb2.OUTCOME_FAILED)).status == pb.RELEASE_STATUS_FAILED
    assert (await deploy(types_pb2.OUTCOME_ROLLED_BACK)).status == pb.RELEASE_STATUS_FAILED
    assert (await deploy(types_pb2.OUTCOME_CANCELLED)).status == pb.RELEASE_STATUS_UNSPECIFIED
    assert (await deploy(types_pb2.OUTCOME_SUCCEEDED)).status == pb.RELEASE_STATUS_ACTIVE
    # Active wins over what its later deployments say.
    assert (await deploy(types_pb2.OUTCOME_ROLLED_BACK)).status == pb.RELEASE_STATUS_ACTIVE

    before = release_server.snapshot()
    for outcome, message in [
        (99, "invalid deployment outcome 99"),
        (types_pb2.OUTCOME_UNSPECIFIED, "deployment outcome is required"),
    ]:
        err = await refused(
            Code.INVALID_ARGUMENT,
            report(stub, rel.id, "DZZZZZZZZZZ", outcome),  # type: ignore[arg-type]
        )
        assert str(err.details()).startswith(message), err.details()
        assert error_details(err) == ("INVALID_ARGUMENT", "outcome")
    for deployment_id, message in [
        ("", "deployment id is required"),
        ("D", 'invalid deployment id "D": ids are D followed by 10 capital letters'),
        ("RAAAAAAAAAA", 'invalid deployment id "RAAAAAAAAAA"'),
    ]:
        err = await refused(
            Code.INVALID_ARGUMENT, report(stub, rel.id, deployment_id, types_pb2.OUTCOME_RUNNING)
        )
        assert str(err.details()).startswith(message), err.details()
        assert error_details(err) == ("INVALID_ID", "deployment_id")
    assert release_server.snapshot() == before


async def test_refused_requests_leave_the_database_unchanged(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    await make_app(stub, "other")
    mine = await import_build(stub)
    theirs = await import_build(stub, "other")
    before = release_server.counts(), release_server.snapshot()

    refused: list[Callable[[], Awaitable[Any]]] = [
        lambda: make_app(stub),
        lambda: make_app(stub, "Nope"),
        lambda: stub.DeleteApp(pb.DeleteAppRequest(name="ghost")),
        lambda: import_build(stub, "ghost"),
        lambda: import_build(stub, manifest="services:\n  web:\n    port: x\n"),
        lambda: set_env(stub, **{"1BAD": "x"}),
        lambda: stub.ChangeEnv(pb.ChangeEnvRequest(app="myapp", unset=["NOPE"])),
        lambda: stub.CreateRelease(pb.CreateReleaseRequest(app="myapp", build_id=theirs.build.id)),
        lambda: stub.CreateReleaseFrom(pb.CreateReleaseFromRequest(app="myapp")),
        lambda: stub.CreateRollbackRelease(
            pb.CreateRollbackReleaseRequest(app="myapp", release_id=theirs.release.id)
        ),
        lambda: report(stub, theirs.release.id, "DAAAAAAAAAA", types_pb2.OUTCOME_SUCCEEDED),
        lambda: report(stub, mine.release.id, "D", types_pb2.OUTCOME_SUCCEEDED),
        lambda: report(stub, mine.release.id, "DAAAAAAAAAA", 42),  # type: ignore[arg-type]
        lambda: stub.GetRelease(pb.GetReleaseRequest(app="myapp", id="nope")),
    ]
    for call in refused:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() in (
            Code.INVALID_ARGUMENT,
            Code.NOT_FOUND,
            Code.ALREADY_EXISTS,
            Code.FAILED_PRECONDITION,
        ), err.value.details()
    assert (release_server.counts(), release_server.snapshot()) == before
