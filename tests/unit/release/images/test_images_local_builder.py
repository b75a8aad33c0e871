"""The local builder end to end on the OCI layout store: real images, the same digest every
time, the config the Dockerfile says, bases from the store, errors that change nothing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from relman_common.errors import FailedPrecondition, InvalidArgument, NotFound
from relman_release.images import BuildRequest, get_builder
from relman_release.images.base import BASE_NOT_FOUND, NO_DOCKERFILE
from relman_release.images.layout import LayoutStore
from relman_release.images.local import LocalBuilder
from relman_release.images.oci import EPOCH, OCI_MANIFEST
from relman_release.images.store import read_blob
from support.images import MakeContext

DOCKERFILE = """\
FROM scratch
ARG VERSION=dev
ENV APP_HOME=/srv/app VERSION=$VERSION
WORKDIR $APP_HOME
COPY app/ ./
LABEL org.opencontainers.image.version=$VERSION
EXPOSE 8080
USER 1000
ENTRYPOINT ["/srv/app/run.sh"]
CMD ["--serve"]
"""
FILES = {"Dockerfile": DOCKERFILE, "app/run.sh": ("#!/bin/sh\necho hi\n", 0o755), "notes": "n"}
IMAGE = "myapp:web.BABCDEFGHIJ"


def image_of(store: LayoutStore, repository: str, tag: str) -> tuple[dict[str, Any], ...]:
    manifest = store.get_manifest(repository, tag).json
    config = json.loads(read_blob(store, repository, manifest["config"]["digest"]))
    return manifest, config


def test_a_build_makes_an_image_with_the_dockerfiles_config(
    local_builder: LocalBuilder, layout: LayoutStore, make_context: MakeContext
) -> None:
    lines: list[str] = []
    built = local_builder.build(
        BuildRequest(make_context(FILES), IMAGE, build_args={"VERSION": "1.2"}), lines.append
    )
    assert built.reference == IMAGE
    assert built.pinned == f"myapp@{built.digest}"
    manifest, config = image_of(layout, "myapp", "web.BABCDEFGHIJ")
    assert manifest["mediaType"] == OCI_MANIFEST and len(manifest["layers"]) == 1
    assert config["config"]["Env"][:2] == ["APP_HOME=/srv/app", "VERSION=1.2"]
    assert config["config"]["WorkingDir"] == "/srv/app"
    assert config["config"]["Labels"] == {"org.opencontainers.image.version": "1.2"}
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert (config["config"]["User"], config["config"]["Cmd"]) == ("1000", ["--serve"])
    assert (config["created"], config["os"]) == (EPOCH, "linux")
    assert len(config["rootfs"]["diff_ids"]) == 1
    assert [h for h in config["history"] if not h.get("empty_layer")] == [config["history"][-1]]
    assert lines[0] == "Step 1/10 : FROM scratch"
    assert 'Step 10/10 : CMD ["--serve"]' in lines
    assert lines[-1] == f"Pushed {IMAGE} digest: {built.digest}"


def test_the_same_context_and_base_give_the_same_digest_in_any_store(
    local_builder: LocalBuilder, make_context: MakeContext, tmp_path: Path
) -> None:
    request = BuildRequest(make_context(FILES), IMAGE)
    first = local_builder.build(request, lambda _: None)
    again = local_builder.build(request, lambda _: None)
    elsewhere = LocalBuilder(LayoutStore(tmp_path / "other")).build(
        BuildRequest(make_context(FILES), IMAGE), lambda _: None
    )
    assert first.digest == again.digest == elsewhere.digest
    changed = local_builder.build(
        BuildRequest(make_context({**FILES, "app/run.sh": "#!/bin/sh\necho bye\n"}), IMAGE),
        lambda _: None,
    )
    assert changed.digest != first.digest


def test_a_base_from_the_store_keeps_its_layers_and_config(
    local_builder: LocalBuilder, layout: LayoutStore, make_context: MakeContext
) -> None:
    base_files = {
        "Dockerfile": 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin LANG=C\nCMD ["sh"]\n',
        "rootfs/bin/sh": ("#!binary\n", 0o755),
        "rootfs/etc/os-release": "ID=test\n",
    }
    base = local_builder.build(BuildRequest(make_context(base_files), "base:v1"), lambda _: None)
    app_files = {"Dockerfile": "FROM base:v1\nCOPY tool /bin\nENV LANG=C.UTF-8\n", "tool": "t"}
    lines: list[str] = []
    local_builder.build(BuildRequest(make_context(app_files), IMAGE), lines.append)
    manifest, config = image_of(layout, "myapp", "web.BABCDEFGHIJ")
    base_manifest, _ = image_of(layout, "base", "v1")
    assert manifest["layers"][:1] == base_manifest["layers"]
    assert len(manifest["layers"]) == 2
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base.digest
    assert config["config"]["Env"] == ["PATH=/bin", "LANG=C.UTF-8"]
    assert config["config"]["Cmd"] == ["sh"]
    assert len(config["history"]) == 4 + 3
    assert f" ---> base@{base.digest} (1 layers)" in lines


def test_an_image_name_outside_the_store_is_refused(
    local_builder: LocalBuilder, make_context: MakeContext
) -> None:
    with pytest.raises(InvalidArgument, match="with no registry configured"):
        local_builder.build(
            BuildRequest(make_context(FILES), "127.0.0.1:5000/myapp:web.B"), lambda _: None
        )


@pytest.mark.parametrize(
    ("files", "dockerfile", "error", "words"),
    [
        ({"a": "a"}, "Dockerfile", InvalidArgument, "no Dockerfile"),
        ({"a": "a"}, "../Dockerfile", InvalidArgument, "outside the build context"),
        ({"Dockerfile": "FROM nothing:here\n"}, "Dockerfile", NotFound, '"nothing:here" is not'),
        ({"Dockerfile": "FROM scratch\nRUN true\n"}, "Dockerfile", FailedPrecondition, "RUN"),
        ({"Dockerfile": "FROM scratch\nCMD x\n"}, "Dockerfile", InvalidArgument, "empty"),
    ],
)
def test_a_failed_build_says_why_and_stores_nothing(
    local_builder: LocalBuilder,
    layout: LayoutStore,
    make_context: MakeContext,
    files: dict[str, str],
    dockerfile: str,
    error: type[Exception],
    words: str,
) -> None:
    context = make_context(files)
    with pytest.raises(error, match=words):
        local_builder.build(BuildRequest(context, IMAGE, dockerfile=dockerfile), lambda _: None)
    assert json.loads((layout.root / "index.json").read_text())["manifests"] == []
    assert list((layout.root / "blobs" / "sha256").iterdir()) == []
    assert list((context.parent / "work").iterdir()) == []


def test_reasons_of_errors_are_stable(
    local_builder: LocalBuilder, make_context: MakeContext
) -> None:
    with pytest.raises(InvalidArgument) as no_file:
        local_builder.build(BuildRequest(make_context({}), IMAGE), lambda _: None)
    with pytest.raises(NotFound) as no_base:
        local_builder.build(
            BuildRequest(make_context({"Dockerfile": "FROM none\n"}), IMAGE), lambda _: None
        )
    assert (no_file.value.reason, no_base.value.reason) == (NO_DOCKERFILE, BASE_NOT_FOUND)


def test_a_dockerfile_that_is_not_utf8_is_refused(
    local_builder: LocalBuilder, make_context: MakeContext
) -> None:
    context = make_context({})
    (context / "Dockerfile").write_bytes(b"FROM scratch\nLABEL a=\xff\n")
    with pytest.raises(InvalidArgument, match="is not UTF-8 text"):
        local_builder.build(BuildRequest(context, IMAGE), lambda _: None)


def test_get_builder_knows_local_and_docker(tmp_path: Path) -> None:
    builder = get_builder("local", data_dir=tmp_path)
    assert builder.name == "local"
    assert (tmp_path / "images" / "oci-layout").is_file()
    with pytest.raises(FailedPrecondition, match="set RELMAN_REGISTRY"):
        get_builder("docker")
    assert get_builder("docker", registry="127.0.0.1:5000").name == "docker"
    with pytest.raises(InvalidArgument, match="unknown builder 'kaniko'"):
        get_builder("kaniko")


def layer_paths(store: LayoutStore, repository: str, tag: str) -> list[str]:
    manifest, _ = image_of(store, repository, tag)
    layer = read_blob(store, repository, manifest["layers"][-1]["digest"])
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        return sorted(member.name for member in tar.getmembers())


def test_what_dockerignore_excludes_stays_out_of_copy_as_with_docker_build(
    local_builder: LocalBuilder, layout: LayoutStore, make_context: MakeContext
) -> None:
    """The Dockerfile and .dockerignore reach the builder whatever .dockerignore says (the
    CLI always sends them), but COPY does not see them when it names them; an exception
    keeps a file inside an excluded directory; a name starting with a dot is matched whole."""
    context = make_context(
        {
            "Dockerfile": "FROM scratch\nCOPY . /srv/\n",
            ".dockerignore": "Dockerfile\n.dockerignore\nsecrets\n*.log\nvendor\n!vendor/keep\n",
            ".env.example": "A=1",
            "app.py": "print(1)",
            "debug.log": "x",
            "secrets/key": "k",
            "vendor/drop": "d",
            "vendor/keep": "k",
        }
    )
    local_builder.build(BuildRequest(context, IMAGE), lambda _: None)
    assert layer_paths(layout, "myapp", "web.BABCDEFGHIJ") == [
        "srv",
        "srv/.env.example",
        "srv/app.py",
        "srv/vendor",
        "srv/vendor/keep",
    ]
    (context / "Dockerfile").write_text("FROM scratch\nCOPY debug.log /srv/\n")
    with pytest.raises(InvalidArgument, match=r"\"debug.log\" is not in the build context"):
        local_builder.build(BuildRequest(context, IMAGE), lambda _: None)
