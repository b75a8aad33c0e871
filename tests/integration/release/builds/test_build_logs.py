"""BuildLogs: the build, its stored lines after ``after_seq``, new lines live while it runs
(``follow``), and the build as it ended; a broken stream resumes by seq without gaps or
repeats. A build that waits on a registry that never answers stays running as long as the
test needs."""

from __future__ import annotations

import asyncio

import grpc
from relman.v1 import build_pb2 as bpb
from relman.v1 import release_pb2 as pb
from support.builds import BuildServer, SilentRegistry, app_source, archive, hanging_source


def texts(updates: list[bpb.BuildUpdate]) -> list[tuple[int, str]]:
    return [(u.line.seq, u.line.text) for u in updates if u.HasField("line")]


async def test_logs_replay_and_resume_by_seq(build_server: BuildServer) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    build = await s.create("myapp", archive(app_source()))
    whole = await s.updates("myapp", build.id)
    done = whole[-1].build
    lines = texts(whole)
    assert whole[0].HasField("build") and done.status == pb.BUILD_STATUS_COMPLETE
    assert [seq for seq, _ in lines] == list(range(1, done.log_lines + 1))
    assert lines[1] == (2, "Building: web")
    assert any("Pushed myapp:web." in text for _, text in lines)
    assert all(u.line.HasField("time") for u in whole if u.HasField("line"))

    for after in (0, 2, done.log_lines):  # a finished build: follow or not, the same
        for follow in (True, False):
            resumed = await s.updates("myapp", build.id, after=after, follow=follow)
            assert texts(resumed) == lines[after:]
            assert resumed[0].build.id == resumed[-1].build.id == build.id
            assert resumed[-1].build == done


async def test_follow_streams_lines_live_until_the_build_ends(
    build_server: BuildServer, silent_registry: SilentRegistry
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    build = await s.create("myapp", archive(hanging_source(silent_registry)))
    request = bpb.BuildLogsRequest(app="myapp", id=build.id, follow=True)
    stream = s.builds.BuildLogs(request, timeout=60)
    first = await stream.read()
    assert first.build.id == build.id
    seen = [await stream.read() for _ in range(3)]  # then it waits for the base image
    assert [seq for seq, _ in texts(seen)] == [1, 2, 3]
    assert seen[0].line.text.startswith("Unpacking source ")
    assert seen[1].line.text == "Building: web"
    assert seen[2].line.text == f"Step 1/2 : FROM {silent_registry.addr}/base:1"

    # Not following: what is stored now, then the build as it is (still running).
    now = await s.updates("myapp", build.id, follow=False)
    assert texts(now) == texts(seen) and now[-1].build.status == pb.BUILD_STATUS_RUNNING

    # A second follower, resuming after line 1 while the first one waits.
    resumed = asyncio.ensure_future(s.updates("myapp", build.id, after=1))
    await asyncio.sleep(0.3)
    assert not resumed.done()
    silent_registry.close()  # the registry goes away: the build fails
    rest = []
    while (update := await stream.read()) is not grpc.aio.EOF:
        rest.append(update)
    final = rest[-1].build
    assert final.status == pb.BUILD_STATUS_FAILED and "cannot be reached" in final.reason
    assert all(u.HasField("line") for u in rest[:-1])
    other = await resumed
    assert texts(other) == texts(seen)[1:] + texts(rest)
    assert other[-1].build == final
