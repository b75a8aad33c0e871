"""Env values are sealed at rest (AES-256-GCM, bound to their release) on SQLite and PostgreSQL,
and an env that can't be opened fails its reads clearly without harming anything else. (Where
the key comes from is in tests/unit/security/test_env_at_rest.py.)"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from relman.v1 import release_pb2 as pb
from relman_common.secretbox import SecretBox
from relman_release.store.codec import serialize_env
from sqlalchemy import text
from support.security import SecureServer, metadata, start_secure_server

Code = grpc.StatusCode
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


async def expect(code: grpc.StatusCode, call: Awaitable[Any]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return str(err.value.details())


def secret_env() -> dict[str, str]:
    """Values that can't appear anywhere by chance."""
    return {
        "DB_PASSWORD": "pw-" + secrets.token_hex(12),
        "API_KEY": "key=" + secrets.token_hex(12) + "\nsecond line",
    }


async def app_with_env(s: SecureServer, env: dict[str, str]) -> list[str]:
    """An app with an env release, a build release and a created-from release; their ids."""
    md = metadata(s.admin)
    await s.release.CreateApp(pb.CreateAppRequest(name="myapp"), metadata=md)
    changed = await s.release.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set=env), metadata=md)
    built = await s.release.ImportBuild(
        pb.ImportBuildRequest(
            app="myapp", manifest=MANIFEST, images={"web": "r/web:1"}, description="b"
        ),
        metadata=md,
    )
    return [changed.release.id, built.release.id]


def fragments(env: dict[str, str]) -> list[bytes]:
    """Byte strings that would betray a value: each value, its parts and its JSON escaping."""
    found: list[bytes] = []
    for value in env.values():
        found += [part.encode() for part in value.split("\n")]
        found.append(serialize_env({"K": value}).encode()[6:-1])
    return found


async def test_env_values_never_reach_the_database_in_the_clear(
    secure_server: SecureServer, db_url: str
) -> None:
    s = secure_server
    env = secret_env()
    ids = await app_with_env(s, env)
    got = await s.release.GetEnv(pb.GetEnvRequest(app="myapp"), metadata=metadata(s.admin))
    assert (dict(got.env), got.release_id) == (env, ids[-1])

    dump = repr(s.snapshot()).encode()
    assert not [f for f in fragments(env) if f in dump]
    with s.uow.engine.connect() as conn:
        stored = [v for (v,) in conn.execute(text("SELECT env FROM releases"))]
    assert len(stored) == 2 and all(v.startswith("v1:") for v in stored)
    assert stored[0] != stored[1]  # same env, fresh nonce and other associated data

    if db_url.startswith("postgresql"):
        with psycopg.connect(db_url) as conn:
            raw = conn.execute("SELECT convert_to(releases::text, 'UTF8') FROM releases").fetchall()
        blob = b"".join(bytes(r[0]) for r in raw)
        assert b"v1:" in blob  # the raw rows were read
    else:
        s.uow.engine.dispose()  # checkpoints the WAL into the main file
        files = sorted(Path(db_url.removeprefix("sqlite:///")).parent.glob("relman.db*"))
        blob = b"".join(p.read_bytes() for p in files)
        assert blob  # the database files were read
    assert not [f for f in fragments(env) if f in blob]


async def test_a_sealed_env_copied_onto_another_release_does_not_open(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    env_release, build_release = await app_with_env(s, secret_env())
    with s.uow.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE releases SET env = (SELECT env FROM releases WHERE id = :src) "
                "WHERE id = :dst"
            ),
            {"src": env_release, "dst": build_release},
        )
    md = metadata(s.admin)
    message = await expect(
        Code.FAILED_PRECONDITION,
        s.release.GetRelease(pb.GetReleaseRequest(app="myapp", id=build_release), metadata=md),
    )
    assert f"cannot read the env of release {build_release}" in message
    ok = await s.release.GetRelease(pb.GetReleaseRequest(app="myapp", id=env_release), metadata=md)
    assert ok.env


async def test_a_wrong_secret_key_fails_env_reads_clearly_and_writes_nothing(
    secure_server: SecureServer, db_url: str
) -> None:
    s = secure_server
    await app_with_env(s, secret_env())
    other = await start_secure_server(db_url, s.data_dir, box=SecretBox(SecretBox.generate_key()))
    try:
        md = metadata(other.admin)
        listed = await other.release.ListReleases(pb.ListReleasesRequest(app="myapp"), metadata=md)
        assert len(listed.releases) == 2  # everything but env still works
        before = other.snapshot()
        message = await expect(
            Code.FAILED_PRECONDITION,
            other.release.GetEnv(pb.GetEnvRequest(app="myapp"), metadata=md),
        )
        assert "sealed with another secret key (RELMAN_SECRET_KEY or <data-dir>/secret.key)" in (
            message
        )
        await expect(
            Code.FAILED_PRECONDITION,
            other.release.ChangeEnv(pb.ChangeEnvRequest(app="myapp", set={"X": "1"}), metadata=md),
        )
        await expect(
            Code.FAILED_PRECONDITION,
            other.release.GetDeployable(pb.GetDeployableRequest(app="myapp"), metadata=md),
        )
        assert other.snapshot() == before
    finally:
        await other.channel.close()
        await other.service.stop(grace=0)


async def test_an_env_stored_in_plaintext_is_refused(secure_server: SecureServer) -> None:
    s = secure_server
    release_id, _ = await app_with_env(s, secret_env())
    with s.uow.engine.begin() as conn:
        conn.execute(
            text("UPDATE releases SET env = :env WHERE id = :id"),
            {"env": serialize_env({"A": "1"}), "id": release_id},
        )
    message = await expect(
        Code.FAILED_PRECONDITION,
        s.release.GetEnv(
            pb.GetEnvRequest(app="myapp", release_id=release_id), metadata=metadata(s.admin)
        ),
    )
    assert message.startswith(
        f"cannot read the env of release {release_id}: it is stored unencrypted"
    )
