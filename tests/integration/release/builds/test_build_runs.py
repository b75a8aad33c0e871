"""Builds from source on the Release service: CreateBuild's checks (nothing is created when
they fail), and the runner: a build with the local builder into the OCI layout store ends
COMPLETE with a release of it, a failing one FAILED with the builder's reason and no release.
Real gRPC, real store on SQLite and PostgreSQL, real archives and images."""

from __future__ import annotations

import json

import pytest
from relman.v1 import build_pb2 as bpb
from relman.v1 import release_pb2 as pb
from support.builds import DOCKERFILE, BuildServer, app_source, archive, sha256

from ..calls import Code, details_of, refused

DIGEST_REF = r"^myapp@sha256:[0-9a-f]{64}$"


async def created(s: BuildServer, app: str = "myapp") -> None:
    await s.releases.CreateApp(pb.CreateAppRequest(name=app))


BAD = {
    "no manifest": (
        app_source(**{"convox.yml": b""}) | {"convox.yml": ("dir", "")},
        {},
        'the source has no manifest "convox.yml"',
        "INVALID_ARGUMENT",
    ),
    "manifest elsewhere": (
        app_source(),
        {"manifest_path": "deploy/convox.yml"},
        'no manifest "deploy/convox.yml"',
        "INVALID_ARGUMENT",
    ),
    "invalid manifest": (
        app_source(**{"convox.yml": b"services:\n  web:\n    buidl: .\n"}),
        {},
        "manifest line 3: unknown key services.web.buidl",
        "INVALID_MANIFEST",
    ),
    "build path outside": (
        app_source(**{"convox.yml": b"services:\n  web:\n    build: ../other\n"}),
        {},
        "must be a path inside the build context",
        "INVALID_MANIFEST",
    ),
    "no Dockerfile": (
        {"convox.yml": b"services:\n  web:\n    build: .\n", "run": b"x"},
        {},
        'service web: no Dockerfile: "Dockerfile" is not a file of the source',
        "NO_DOCKERFILE",
    ),
    "named Dockerfile missing": (
        app_source(**{"convox.yml": b"services:\n  web:\n    build: {manifest: Dockerfile.web}\n"}),
        {},
        'no Dockerfile: "Dockerfile.web" is not a file of the source',
        "NO_DOCKERFILE",
    ),
    "build path missing": (
        app_source(**{"convox.yml": b"services:\n  api:\n    build: ./api\n"}),
        {},
        'service api: the build path "api" is not a directory of the source',
        "MISSING_SOURCE",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_a_source_that_can_not_be_built_creates_no_build(
    build_server: BuildServer, case: str
) -> None:
    s = build_server
    await created(s)
    entries, options, says, reason = BAD[case]
    data = archive(entries)
    await s.upload("myapp", data)
    request = bpb.CreateBuildRequest(app="myapp", source_sha256=sha256(data), **options)
    err = await refused(Code.INVALID_ARGUMENT, s.builds.CreateBuild(request))
    assert says in str(err.details())
    assert details_of(err).reason == reason
    assert s.rows("builds") == 0


async def test_a_source_not_held_or_an_app_not_there_is_not_found(
    build_server: BuildServer,
) -> None:
    s = build_server
    request = bpb.CreateBuildRequest(app="myapp", source_sha256="a" * 64)
    err = await refused(Code.NOT_FOUND, s.builds.CreateBuild(request))
    assert details_of(err).reason == "APP_NOT_FOUND"
    await created(s)
    err = await refused(Code.NOT_FOUND, s.builds.CreateBuild(request))
    assert (err.details(), details_of(err).reason) == (
        f"source not found: {'a' * 64}",
        "SOURCE_NOT_FOUND",
    )
    assert details_of(err).fields == []
    assert s.rows("builds") == 0


async def test_a_build_completes_into_a_release_with_the_latest_env(
    build_server: BuildServer,
) -> None:
    s = build_server
    await created(s)
    await s.releases.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set={"GREETING": "hi"}))
    data = archive(app_source())
    build = await s.create("myapp", data, description="build 0a1b2c3d4e first", git_sha="0a1b2c")
    assert build.status == pb.BUILD_STATUS_CREATED and build.source_sha256 == sha256(data)
    assert build.release_id == "" and dict(build.images) == {}

    done = await s.finished("myapp", build.id)
    assert done.status == pb.BUILD_STATUS_COMPLETE, done.reason
    assert done.HasField("started") and done.HasField("ended") and done.log_lines >= 4
    assert list(done.images) == ["web"]
    assert done.images["web"].startswith("myapp@sha256:")
    release = await s.releases.GetRelease(pb.GetReleaseRequest(app="myapp", id=done.release_id))
    assert (release.build_id, dict(release.env)) == (build.id, {"GREETING": "hi"})
    assert release.description == "build 0a1b2c3d4e first"
    app = await s.releases.GetApp(pb.GetAppRequest(name="myapp"))
    assert app.latest_release_id == done.release_id

    # GetBuild and ListBuilds say the same (the CLI's RELEASE column).
    got = await s.releases.GetBuild(pb.GetBuildRequest(app="myapp", id=build.id))
    listed = (await s.releases.ListBuilds(pb.ListBuildsRequest(app="myapp"))).builds
    assert got == done and list(listed) == [done]
    # The image is in the OCI layout under the data dir, by that digest, tagged per service.
    index = json.loads((s.data_dir / "images" / "index.json").read_text())
    tagged = {
        m["annotations"].get("org.opencontainers.image.ref.name"): m["digest"]
        for m in index["manifests"]
    }
    assert tagged[f"myapp:web.{build.id}"] == done.images["web"].split("@")[1]
    assert list((s.data_dir / "builds").iterdir()) == []  # its temporary directory is gone


async def test_the_same_source_built_twice_gives_the_same_digest_and_two_releases(
    build_server: BuildServer,
) -> None:
    s = build_server
    await created(s)
    data = archive(app_source())
    first = await s.finished("myapp", (await s.create("myapp", data)).id)
    second = await s.finished("myapp", (await s.create("myapp", data)).id)
    assert first.status == second.status == pb.BUILD_STATUS_COMPLETE
    assert first.id != second.id and first.release_id != second.release_id
    assert first.images == second.images


async def test_services_sharing_a_build_get_one_image_and_image_services_keep_theirs(
    build_server: BuildServer,
) -> None:
    s = build_server
    await created(s)
    manifest = (
        b"services:\n  web:\n    build: .\n  worker:\n    build: .\n"
        b"  api:\n    build: {path: api, manifest: Dockerfile.api}\n  db:\n    image: postgres:16\n"
    )
    api_dockerfile = b'FROM scratch\nCOPY main /main\nENTRYPOINT ["/main"]\n'
    data = archive(
        app_source(
            **{"convox.yml": manifest, "api/Dockerfile.api": api_dockerfile, "api/main": b"x"}
        )
    )
    build = await s.create("myapp", data)
    updates = await s.updates("myapp", build.id)
    done = updates[-1].build
    assert done.status == pb.BUILD_STATUS_COMPLETE, done.reason
    lines = [u.line.text for u in updates if u.HasField("line")]
    assert [t for t in lines if t.startswith("Building:")] == [
        "Building: web, worker",
        "Building: api",
    ]
    images = dict(done.images)
    assert images["web"] == images["worker"] != images["api"]
    assert images["db"] == "postgres:16"


async def test_a_failing_build_is_failed_with_the_builders_reason_and_makes_no_release(
    build_server: BuildServer,
) -> None:
    s = build_server
    await created(s)
    dockerfile = DOCKERFILE.replace(b"COPY", b"RUN echo building\nCOPY")
    # Made once: the gzip header holds the second it was written in.
    source = archive(app_source(Dockerfile=dockerfile))
    build = await s.create("myapp", source)
    updates = await s.updates("myapp", build.id)
    done = updates[-1].build
    assert done.status == pb.BUILD_STATUS_FAILED
    assert "RUN" in done.reason and "docker builder" in done.reason, done.reason
    assert done.release_id == "" and dict(done.images) == {} and done.HasField("ended")
    lines = [u.line.text for u in updates if u.HasField("line")]
    assert lines[:2] == [
        f"Unpacking source {sha256(source)[:12]}",
        "Building: web",
    ]
    assert len(lines) == done.log_lines
    assert s.rows("releases") == 0
    app = await s.releases.GetApp(pb.GetAppRequest(name="myapp"))
    assert app.latest_release_id == ""
