"""Uploads of source archives: content-addressed and kept once, refused whole (nothing kept)
when cut short, mis-hashed, unsafe to unpack or over a limit. Real gRPC, real store, on
SQLite and PostgreSQL; archives made by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from relman.v1 import build_pb2 as bpb
from relman.v1 import release_pb2 as pb
from support.builds import BuildServer, app_source, archive, sha256, upload_requests

from ..calls import Code, details_of, expect, refused


async def test_an_upload_is_kept_once_and_stat_source_then_says_it_is_held(
    build_server: BuildServer,
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    data = archive(app_source())
    digest = sha256(data)
    stat = bpb.StatSourceRequest(app="myapp", sha256=digest)
    err = await refused(Code.NOT_FOUND, s.builds.StatSource(stat))
    assert details_of(err).reason == "SOURCE_NOT_FOUND"

    info = await s.upload("myapp", data)
    assert (info.sha256, info.size, info.entries) == (digest, len(data), 3)
    assert s.kept_sources() == [digest, f"{digest}.json"]
    assert await s.builds.StatSource(stat) == info  # a client sends nothing more

    # Sent again anyway (a client that did not ask): answered at once, nothing changes.
    again = await s.builds.UploadSource(upload_requests("myapp", data))
    assert again == info
    assert s.kept_sources() == [digest, f"{digest}.json"]


async def test_an_upload_needs_its_app_and_a_header_first(build_server: BuildServer) -> None:
    s = build_server
    data = archive(app_source())
    message = await expect(Code.NOT_FOUND, s.builds.UploadSource(upload_requests("nope", data)))
    assert message == "app not found: nope"
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))

    async def chunk_first():  # type: ignore[no-untyped-def]
        yield bpb.UploadSourceRequest(chunk=data)

    message = await expect(Code.INVALID_ARGUMENT, s.builds.UploadSource(chunk_first()))
    assert "first message of an upload must be its header" in message
    bad = upload_requests("myapp", data, sha="ABC")
    assert "invalid sha256" in await expect(Code.INVALID_ARGUMENT, s.builds.UploadSource(bad))
    assert s.kept_sources() == []


@pytest.mark.parametrize(
    ("lie", "says"),
    [
        ({"sha": "0" * 64}, "the uploaded bytes hash to"),
        ({"size": 10_000_000}, "the upload ended after"),
        ({"size": 100}, "more than the 100 bytes announced"),
    ],
)
async def test_bytes_that_are_not_what_the_header_announced_leave_nothing(
    build_server: BuildServer, lie: dict[str, object], says: str
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    data = archive(app_source())
    upload = upload_requests("myapp", data, chunk=64, **lie)  # type: ignore[arg-type]
    message = await expect(Code.INVALID_ARGUMENT, s.builds.UploadSource(upload))
    assert says in message and "nothing was kept" in message
    assert s.kept_sources() == []


async def test_an_upload_cut_in_the_middle_leaves_nothing(build_server: BuildServer) -> None:
    """The client sends half of the archive, then goes away (its call is cancelled)."""
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    data = archive(app_source(big=bytes(range(256)) * 20_000))
    half_sent = asyncio.Event()

    async def half_then_hang() -> AsyncIterator[bpb.UploadSourceRequest]:
        async for request in upload_requests("myapp", data, chunk=64 * 1024, cut=len(data) // 2):
            yield request
        half_sent.set()
        await asyncio.Event().wait()

    requests = half_then_hang()
    call = s.builds.UploadSource(requests)
    await half_sent.wait()
    temporary = s.data_dir / "sources" / "sha256"
    for _ in range(200):  # the server is writing the bytes it got
        if any(p.name.startswith(".upload-") for p in temporary.iterdir()):
            break
        await asyncio.sleep(0.01)
    assert s.kept_sources() != []
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(200):  # its side ends when it sees the stream cut; the file goes with it
        if s.kept_sources() == []:
            break
        await asyncio.sleep(0.02)
    assert s.kept_sources() == []
    stat = bpb.StatSourceRequest(app="myapp", sha256=sha256(data))
    await refused(Code.NOT_FOUND, s.builds.StatSource(stat))


UNSAFE = {
    "absolute path": ({"/etc/passwd": b"x"}, 'the entry "/etc/passwd" has an absolute path'),
    "dot-dot": ({"app/../../x": b"x"}, 'the entry "app/../../x" leaves the root'),
    "absolute symlink": ({"l": ("symlink", "/etc")}, 'the link "l" points outside'),
    "relative symlink": ({"d/l": ("symlink", "../../etc")}, 'the link "d/l" points outside'),
    "symlink chain": (
        {"p": ("symlink", "."), "l": ("symlink", "p/..")},
        'the link "l" points outside the archive ("p/..")',
    ),
    "hard link out": ({"h": ("hardlink", "../etc/passwd")}, 'the hard link "h" names'),
    "link loop": ({"a": ("symlink", "b"), "b": ("symlink", "a")}, 'the link "a" is a loop'),
    "huge header": ({"x" * (2 * 1024 * 1024): b"x"}, "an entry's header is larger than"),
    "fifo": ({"f": ("fifo", "")}, 'the entry "f" is a fifo'),
    "device": ({"null": ("chardev", "")}, 'the entry "null" is a device'),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
async def test_an_archive_unsafe_to_unpack_is_refused_naming_the_entry_and_not_kept(
    build_server: BuildServer, case: str
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    entries, says = UNSAFE[case]
    data = archive(app_source(**entries))
    err = await refused(Code.INVALID_ARGUMENT, s.upload("myapp", data))
    assert says in str(err.details())
    assert details_of(err).reason == "INVALID_SOURCE"
    assert s.kept_sources() == []


async def test_not_a_tar_gz_is_refused(build_server: BuildServer) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    message = await expect(Code.INVALID_ARGUMENT, s.upload("myapp", b"just text, not gzip"))
    assert "not a gzip-compressed tar file" in message
    assert s.kept_sources() == []


async def test_limits_are_resource_exhausted_naming_the_limit(build_server: BuildServer) -> None:
    """The fixture's limits: 1000 entries, 64 MiB."""
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    many = archive({f"f{i}": b"" for i in range(1001)})
    message = await expect(Code.RESOURCE_EXHAUSTED, s.upload("myapp", many))
    assert "more than 1000 files" in message and "RELMAN_SOURCE_MAX_ENTRIES" in message
    # A small archive that unpacks to more than the limit (a gzip bomb) ...
    bomb = archive({"zeros": bytes(65 * 1024 * 1024)})
    assert len(bomb) < 1024 * 1024
    message = await expect(Code.RESOURCE_EXHAUSTED, s.upload("myapp", bomb))
    assert "unpacks to more than 67108864 bytes" in message
    assert "RELMAN_SOURCE_MAX_BYTES" in message
    # ... and one announced larger than the limit is refused before any byte is read.
    header = upload_requests("myapp", b"", size=65 * 1024 * 1024, sha="a" * 64)
    message = await expect(Code.RESOURCE_EXHAUSTED, s.builds.UploadSource(header))
    assert "more than the 67108864 bytes allowed" in message
    assert s.kept_sources() == []
