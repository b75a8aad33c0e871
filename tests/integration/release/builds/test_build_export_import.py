"""ExportBuild / ImportBuildArchive: a build leaves as a .tgz (relman.json and an OCI image
layout) and comes back, in another app or another rack, as a new complete build and a
release with the same image digests. Real gRPC, real store, real images in OCI layouts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from relman.v1 import release_pb2 as pb
from support.builds import (
    DOCKERFILE,
    BuildServer,
    app_source,
    archive,
    build_config,
    export,
    import_requests,
    serving,
)

from ..calls import Code, expect

MANIFEST = b"services:\n  web:\n    build: .\n  db:\n    image: postgres:16\n"


async def built(s: BuildServer) -> pb.Build:
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    data = archive(app_source(**{"convox.yml": MANIFEST}))
    build = await s.create("myapp", data, description="build 0a1b2c3d4e first", git_sha="0a1b2c")
    done = await s.finished("myapp", build.id)
    assert done.status == pb.BUILD_STATUS_COMPLETE, done.reason
    return done


async def test_an_exported_build_imports_into_another_app_with_the_same_digests(
    build_server: BuildServer,
) -> None:
    s = build_server
    done = await built(s)
    data = await export(s, "myapp", done.id)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        facts = json.load(tar.extractfile("relman.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert names[:3] == ["relman.json", "oci-layout", "index.json"]
    digest = done.images["web"].split("@")[1]
    assert f"blobs/sha256/{digest.removeprefix('sha256:')}" in names
    assert facts["images"] == {
        "db": {"reference": "postgres:16", "digest": ""},
        "web": {"reference": done.images["web"], "digest": digest},
    }
    assert (facts["manifest"], facts["description"], facts["git_sha"]) == (
        done.manifest,
        "build 0a1b2c3d4e first",
        "0a1b2c",
    )
    assert [m["digest"] for m in index["manifests"]] == [digest]

    await s.releases.CreateApp(pb.CreateAppRequest(name="other"))
    await s.releases.ChangeEnv(pb.ChangeEnvRequest(app="other", set={"WHERE": "other"}))
    imported = await s.builds.ImportBuildArchive(import_requests("other", data))
    build, release = imported.build, imported.release
    assert build.id != done.id and build.app == "other"
    assert build.status == pb.BUILD_STATUS_COMPLETE and build.source_sha256 == ""
    assert dict(build.images) == {"web": f"other@{digest}", "db": "postgres:16"}
    assert (build.manifest, build.description, build.git_sha) == (
        done.manifest,
        done.description,
        done.git_sha,
    )
    assert (release.build_id, dict(release.env)) == (build.id, {"WHERE": "other"})
    assert build.release_id == release.id  # the build names its release, as a built one does
    assert release.description == "build 0a1b2c3d4e first"
    layout = json.loads((s.data_dir / "images" / "index.json").read_text())
    tags = {m["annotations"].get("org.opencontainers.image.ref.name") for m in layout["manifests"]}
    assert {f"myapp:web.{done.id}", f"other:web.{build.id}"} <= tags
    assert list((s.data_dir / "builds").iterdir()) == []


async def test_a_build_moves_to_another_rack(build_server: BuildServer, tmp_path: Path) -> None:
    """Another Release service with its own database and data dir (its own OCI layout)."""
    done = await built(build_server)
    data = await export(build_server, "myapp", done.id)
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    async with serving(other_db, build_config(tmp_path / "other")) as other:
        await other.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
        imported = await other.builds.ImportBuildArchive(import_requests("myapp", data))
    assert imported.build.images == done.images  # same app name, same digest
    blobs = tmp_path / "other" / "images" / "blobs" / "sha256"
    assert (blobs / done.images["web"].split(":")[-1]).is_file()


async def test_what_can_not_be_exported_or_imported_is_refused_and_changes_nothing(
    build_server: BuildServer,
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    failing = DOCKERFILE.replace(b"COPY", b"RUN false\nCOPY")
    failed = await s.finished(
        "myapp", (await s.create("myapp", archive(app_source(Dockerfile=failing)))).id
    )
    message = await expect(Code.FAILED_PRECONDITION, export(s, "myapp", failed.id))
    assert message == f"build {failed.id} is failed: only complete builds can be exported"

    before = s.rows("builds"), s.rows("releases")
    not_an_export = archive(app_source())
    message = await expect(
        Code.INVALID_ARGUMENT, s.builds.ImportBuildArchive(import_requests("myapp", not_an_export))
    )
    assert "not a relman build export" in message
    slip = archive({"relman.json": b"{}", "../evil": b"x"})
    message = await expect(
        Code.INVALID_ARGUMENT, s.builds.ImportBuildArchive(import_requests("myapp", slip))
    )
    assert 'the entry "../evil" leaves the root' in message
    message = await expect(
        Code.NOT_FOUND, s.builds.ImportBuildArchive(import_requests("nope", not_an_export))
    )
    assert message == "app not found: nope"
    assert (s.rows("builds"), s.rows("releases")) == before
    assert list((s.data_dir / "builds").iterdir()) == []
