"""The one manifest parser seen through the Release service: ImportBuild accepts the whole
SPEC 2 manifest and refuses bad ones with the line and the reason, and GetDeployable hands
the Deployer exactly what was written, as ServiceSpec messages. Real gRPC, real store, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import grpc
from relman.v1 import release_pb2 as pb
from relman.v1 import types_pb2
from relman_common.grpc_errors import error_details
from relman_common.manifest.proto import services_from_pb
from support.release_manifests import BAD_MANIFESTS, FULL_IMAGES, FULL_MANIFEST

from .calls import Code, import_build, make_app, refused, set_env
from .conftest import ReleaseServer

HTTP, HTTPS = types_pb2.PORT_SCHEME_HTTP, types_pb2.PORT_SCHEME_HTTPS


async def test_the_full_spec_manifest_is_imported_and_deployed_as_written(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    await set_env(stub, FOO="x", WORKERS="8")
    imported = await import_build(stub, manifest=FULL_MANIFEST, images=FULL_IMAGES)
    assert imported.build.manifest == FULL_MANIFEST
    assert dict(imported.build.images) == FULL_IMAGES

    deployable = await stub.GetDeployable(
        pb.GetDeployableRequest(app="myapp", release_id=imported.release.id)
    )
    assert deployable.release.id == imported.release.id
    web, worker, api, cache = deployable.services  # in the manifest's order
    assert web == types_pb2.ServiceSpec(
        name="web",
        image=FULL_IMAGES["web"],
        command=["bin/web"],
        port=types_pb2.Port(number=5443, scheme=HTTPS),
        ports=[5001, 5002],
        health=types_pb2.HealthCheck(
            path="/health", grace_seconds=5, interval_seconds=5, timeout_seconds=4
        ),
        scale=types_pb2.Scale(count=2, max=2, cpu=250, memory=512),
        # The release's env sets FOO and WORKERS; the service's own BAR=web wins over the
        # app's BAR=default.
        env_defaults={"BAR": "web"},
        deployment_minimum=25,
        deployment_maximum=150,
        termination_grace_seconds=45,
        internal=False,
    )
    assert worker == types_pb2.ServiceSpec(
        name="worker",
        image=FULL_IMAGES["worker"],
        command=["bin/worker", "--fast"],
        port=types_pb2.Port(number=8080, scheme=HTTP),
        health=types_pb2.HealthCheck(
            path="/ready", grace_seconds=0, interval_seconds=10, timeout_seconds=3
        ),
        scale=types_pb2.Scale(count=1, max=4),
        env_defaults={"BAR": "default"},
        deployment_minimum=50,
        deployment_maximum=200,
        termination_grace_seconds=30,
        internal=True,
    )
    # A built image wins over the manifest's image:; without one, image: runs as it is.
    assert (api.image, api.port.number, api.port.scheme) == (FULL_IMAGES["api"], 3000, HTTP)
    assert api.health.path == "/"
    assert cache.image == "registry.example/cache:1.4"
    assert not cache.HasField("port") and not cache.HasField("health")
    assert deployable.release_command == types_pb2.ReleaseCommand(
        command=["bin/migrate", "--all"], service="worker", timeout_seconds=300
    )

    # What the Deployer makes of them: the same model, with images resolved.
    services = services_from_pb(deployable.services)
    assert [s.image for s in services] == [*FULL_IMAGES.values(), "registry.example/cache:1.4"]
    assert (services[0].max_unavailable_percent, services[0].max_surge_percent) == (75, 50)
    assert services[0].env_defaults({"FOO": "x"}) == {"BAR": "web"}
    assert services[1].scale.max == 4


async def test_a_port_may_name_its_scheme_and_the_deployer_gets_it(
    release_server: ReleaseServer,
) -> None:
    """``port: https:443`` was refused by the Release service's own parser while the Deployer
    expected it: now one parser accepts it and the scheme travels in the ServiceSpec."""
    stub = release_server.stub
    await make_app(stub)
    for written, number, scheme in [
        ("https:443", 443, HTTPS),
        ("http:80", 80, HTTP),
        ("5000", 5000, HTTP),
    ]:
        manifest = f"services:\n  web:\n    build: .\n    port: {written}\n"
        imported = await import_build(stub, manifest=manifest)
        deployable = await stub.GetDeployable(
            pb.GetDeployableRequest(app="myapp", release_id=imported.release.id)
        )
        (web,) = deployable.services
        assert (web.port.number, web.port.scheme) == (number, scheme), written
        assert web.health.path == "/"  # a service with a port is checked on it


async def test_bad_manifests_are_refused_with_line_path_and_reason_and_write_nothing(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    before = release_server.snapshot()
    for manifest, message in BAD_MANIFESTS:
        err = await refused(Code.INVALID_ARGUMENT, import_build(stub, manifest=manifest, images={}))
        assert err.details() == message
        assert error_details(err) == ("INVALID_MANIFEST", "manifest")
    assert release_server.snapshot() == before


async def test_a_huge_or_binary_manifest_is_refused_in_few_words(
    release_server: ReleaseServer,
) -> None:
    stub = release_server.stub
    await make_app(stub)
    before = release_server.snapshot()
    long = "k" * 100_000
    for manifest, start in [
        (f"services:\n  web:\n    ? {long}\n    : 1\n", "manifest line 3: unknown key"),
        (f"services:\n  web:\n    build: ../{long}\n", "manifest line 3: services.web.build"),
        ("services:\n  web:\n    image: x\x00\n", "manifest holds a NUL character"),
        ("x: " + "y" * (1024 * 1024), "manifest is larger than 1048576 bytes"),
    ]:
        err = await refused(Code.INVALID_ARGUMENT, import_build(stub, manifest=manifest, images={}))
        assert str(err.details()).startswith(start), str(err.details())[:300]
        assert len(str(err.details())) < 300
    assert release_server.snapshot() == before


async def test_images_must_match_the_services_that_need_them(release_server: ReleaseServer) -> None:
    stub = release_server.stub
    await make_app(stub)
    before = release_server.snapshot()
    cases: list[tuple[dict[str, str], str]] = [
        (
            {"web": "w", "api": "a"},
            "no image given for service worker: services that use build: or name no image: "
            "need an image reference",
        ),
        (
            {**FULL_IMAGES, "ghost": "r/g:1", "zz": "r/z:1"},
            "images given for services not in the manifest: ghost, zz",
        ),
        (
            {**FULL_IMAGES, "web": "has space"},
            'invalid image reference for service web: "has space"',
        ),
    ]
    for images, message in cases:
        err = await refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            import_build(stub, manifest=FULL_MANIFEST, images=images),
        )
        assert err.details() == message
        assert error_details(err) == ("INVALID_ARGUMENT", "images")
    assert release_server.snapshot() == before
