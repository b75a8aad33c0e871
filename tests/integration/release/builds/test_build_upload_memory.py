"""Uploads stream to disk: the Release service's memory does not grow with the archive.

A real ``python -m relman_release`` receives a ~100 MB incompressible archive, generated
twice from a seed (once for its sha256, once to send) so the test holds none of it either;
the service's resident memory is sampled from /proc while it receives, hashes, writes and
checks the archive. The issue's limit is < 64 MB of growth for a 500 MB upload: growth that
does not depend on the size stays under it at 100 MB as at 500 MB.
"""

from __future__ import annotations

import hashlib
import random
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from relman.v1 import build_pb2 as bpb
from relman.v1 import build_pb2_grpc, release_pb2_grpc
from relman.v1 import release_pb2 as pb
from support.builds import CHUNK, app_source, archive, sha256
from support.helpers import ServiceProcess, free_port

ARCHIVE_MB = 100
MAX_GROWTH_MB = 64


def incompressible_archive(megabytes: int, seed: int = 11) -> Iterator[bytes]:
    """A gzip tar holding one file of random bytes, in chunks of exactly 1 MiB (the last
    shorter). Deflate stores random data as it is; level 0 says so without trying."""
    rng = random.Random(seed)
    gzip = zlib.compressobj(0, zlib.DEFLATED, 31)
    info = tarfile.TarInfo("random.bin")
    info.size = megabytes * CHUNK
    pending = bytearray(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
    for _ in range(megabytes):
        pending += gzip.compress(rng.randbytes(CHUNK))
        while len(pending) >= CHUNK:
            yield bytes(pending[:CHUNK])
            del pending[:CHUNK]
    pending += gzip.compress(bytes(2 * tarfile.BLOCKSIZE)) + gzip.flush()
    for start in range(0, len(pending), CHUNK):
        yield bytes(pending[start : start + CHUNK])


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class Sampler:
    """The highest RSS of ``pid`` seen every few milliseconds until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(
    stub: build_pb2_grpc.BuildServiceStub, chunks: Iterator[bytes], digest: str, size: int
) -> bpb.SourceInfo:
    def requests() -> Iterator[bpb.UploadSourceRequest]:
        header = bpb.UploadSourceHeader(app="myapp", sha256=digest, size=size)
        yield bpb.UploadSourceRequest(header=header)
        for chunk in chunks:
            yield bpb.UploadSourceRequest(chunk=chunk)

    return stub.UploadSource(requests(), timeout=300)


def test_a_100_mb_upload_does_not_grow_the_services_memory(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    addr = f"127.0.0.1:{free_port()}"
    service = ServiceProcess(
        "relman_release",
        ["--addr", addr, "--data-dir", str(tmp_path / "data")],
        env={"RELMAN_AUTH": "off", "RELMAN_DATABASE_URL": ""},
        log_path=tmp_path / "release.log",
    ).start(addr)
    try:
        hasher, size = hashlib.sha256(), 0
        for chunk in incompressible_archive(ARCHIVE_MB):
            hasher.update(chunk)
            size += len(chunk)
        with grpc.insecure_channel(addr) as channel:
            release_pb2_grpc.ReleaseServiceStub(channel).CreateApp(
                pb.CreateAppRequest(name="myapp"), timeout=10
            )
            stub = build_pb2_grpc.BuildServiceStub(channel)
            small = archive(app_source())  # warms up every path an upload takes
            upload(stub, iter([small]), sha256(small), len(small))
            assert service.proc is not None
            pid = service.proc.pid
            before = rss_kb(pid)
            with Sampler(pid) as sampler:
                started = time.perf_counter()
                info = upload(stub, incompressible_archive(ARCHIVE_MB), hasher.hexdigest(), size)
                elapsed = time.perf_counter() - started
    finally:
        service.stop()
    assert (info.size, info.entries) == (size, 1)
    growth_mb = (sampler.peak_kb - before) / 1024
    rate = size / elapsed / 1e6
    record_property("upload_mb_per_s", round(rate, 1))
    record_property("rss_growth_mb", round(growth_mb, 1))
    print(f"\n{size / 1e6:.0f} MB in {elapsed:.2f} s: {rate:.0f} MB/s; RSS +{growth_mb:.1f} MB")
    assert growth_mb < MAX_GROWTH_MB
