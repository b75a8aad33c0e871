"""The build context as one layer: where COPY/ADD put files (Docker's rules, on the base's
tree), exactly the context's files and nothing else, and the same bytes every time."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_release.images.base import MISSING_SOURCE
from relman_release.images.basetree import BaseTree
from relman_release.images.dockerfile import parse_dockerfile
from relman_release.images.layer import Layer, place, write_layer
from relman_release.images.recipe import apply
from support.images import MakeContext, write_tree


def base_tree(entries: dict[str, str]) -> BaseTree:
    """A base image of one layer: path -> "dir", "file" or "-> link target"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, kind in entries.items():
            info = tarfile.TarInfo(path)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind.startswith("-> "):
                info.type, info.linkname = tarfile.SYMTYPE, kind[3:]
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    tree = BaseTree()
    tree.add_layer([gzip.compress(buffer.getvalue())])
    return tree


def build_layer(context: Path, dockerfile: str, base: BaseTree | None = None) -> Layer:
    recipe = apply(parse_dockerfile(dockerfile), {}, {}, lambda _: None)
    tree = base or BaseTree()
    return write_layer(place(context, recipe.copies, recipe.workdirs, tree), tree, context.parent)


def members(layer: Layer) -> dict[str, tuple[str, int, int, int, bytes]]:
    """path -> (type, mode, uid, gid, content or link target)."""
    found = {}
    with tarfile.open(layer.path, "r:gz") as tar:
        for m in tar.getmembers():
            kind = "dir" if m.isdir() else "link" if m.issym() else "file"
            data = m.linkname.encode() if m.issym() else b""
            if m.isfile():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
            found[m.name] = (kind, m.mode, m.uid, m.gid, data)
            assert (m.mtime, m.uname, m.gname) == (0, "", "")
    return found


APP = {"app/run.sh": ("#!/bin/sh\necho hi\n", 0o755), "app/lib/x.txt": "x", "README": "r"}


# --- placement -------------------------------------------------------------------------------


def test_a_directory_copies_its_contents_and_files_keep_their_modes(
    make_context: MakeContext,
) -> None:
    layer = build_layer(make_context(APP), "FROM scratch\nCOPY app /srv/app\n")
    assert members(layer) == {
        "srv": ("dir", 0o755, 0, 0, b""),
        "srv/app": ("dir", 0o755, 0, 0, b""),
        "srv/app/lib": ("dir", 0o755, 0, 0, b""),
        "srv/app/lib/x.txt": ("file", 0o644, 0, 0, b"x"),
        "srv/app/run.sh": ("file", 0o755, 0, 0, b"#!/bin/sh\necho hi\n"),
    }


def test_the_layer_is_the_union_of_the_copies_and_workdirs_and_the_later_copy_wins(
    make_context: MakeContext,
) -> None:
    context = make_context({**APP, "other/run.sh": ("new\n", 0o700)})
    layer = build_layer(
        context,
        "FROM scratch\nWORKDIR /work\nCOPY app/ /srv/app/\nCOPY README .\n"
        "COPY other/run.sh /srv/app/run.sh\n",
    )
    found = members(layer)
    assert sorted(found) == [
        "srv", "srv/app", "srv/app/lib", "srv/app/lib/x.txt", "srv/app/run.sh",
        "work", "work/README",
    ]  # fmt: skip
    assert found["srv/app/run.sh"] == ("file", 0o700, 0, 0, b"new\n")


def test_a_file_goes_inside_a_directory_of_the_base_and_through_its_links(
    make_context: MakeContext,
) -> None:
    base = base_tree({"usr": "dir", "usr/bin": "dir", "bin": "-> usr/bin", "tmp": "dir"})
    layer = build_layer(
        make_context(APP),
        "FROM base\nCOPY app/run.sh /bin\nCOPY README /usr/bin/readme\nCOPY app/lib /tmp/\n",
        base,
    )
    # Nothing of the base is replaced: not the /bin link, not /usr/bin, not /tmp's mode.
    assert sorted(members(layer)) == ["tmp/x.txt", "usr/bin/readme", "usr/bin/run.sh"]


def test_without_a_trailing_slash_a_new_path_is_the_file_itself(make_context: MakeContext) -> None:
    layer = build_layer(make_context(APP), "FROM scratch\nCOPY README /docs/readme.txt\n")
    assert sorted(members(layer)) == ["docs", "docs/readme.txt"]


def test_wildcards_match_within_a_component_and_flags_set_owner_and_mode(
    make_context: MakeContext,
) -> None:
    context = make_context({"a.py": "a", "b.py": "b", "c.txt": "c", "sub/d.py": "d"})
    layer = build_layer(context, "FROM scratch\nCOPY --chown=10:20 --chmod=600 *.py /x/\n")
    found = members(layer)
    assert sorted(found) == ["x", "x/a.py", "x/b.py"]
    assert found["x/a.py"] == ("file", 0o600, 10, 20, b"a")


def test_links_inside_a_copied_directory_stay_links(make_context: MakeContext) -> None:
    context = make_context({"app/real.txt": "r", "app/alias.txt": "-> real.txt"})
    found = members(build_layer(context, "FROM scratch\nCOPY app /app\n"))
    assert found["app/alias.txt"] == ("link", 0o777, 0, 0, b"real.txt")


@pytest.mark.parametrize(
    ("dockerfile", "words"),
    [
        ("FROM scratch\nCOPY missing.txt /x\n", '"missing.txt" is not in the build context'),
        ("FROM scratch\nCOPY *.none /x/\n", '"*.none" is not in the build context'),
    ],
)
def test_a_missing_source_fails_naming_it(
    make_context: MakeContext, dockerfile: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        build_layer(make_context(APP), dockerfile)
    assert words in str(err.value)
    assert err.value.reason == MISSING_SOURCE


@pytest.mark.parametrize(
    ("dockerfile", "words"),
    [
        ("FROM scratch\nCOPY ../etc/passwd /x\n", "outside the build context"),
        ("FROM scratch\nCOPY escape /x\n", "a link that leaves the build context"),
        ("FROM scratch\nCOPY README app/run.sh /x\n", "the destination must end with /"),
        ("FROM scratch\nCOPY README /f\nCOPY app /f/\n", "cannot copy a directory to /f"),
        ("FROM scratch\nCOPY README /f\nCOPY app/run.sh /f/x\n", "which is a file"),
    ],
)
def test_copies_that_cannot_be_placed_are_refused(
    make_context: MakeContext, dockerfile: str, words: str
) -> None:
    context = make_context({**APP, "escape": "-> /etc"})
    with pytest.raises(InvalidArgument) as err:
        build_layer(context, dockerfile)
    assert words in str(err.value)


def test_add_of_a_local_archive_is_refused_since_docker_would_unpack_it(
    make_context: MakeContext,
) -> None:
    context = make_context({})
    (context / "files.tar.gz").write_bytes(gzip.compress(b"anything"))
    with pytest.raises(FailedPrecondition, match="Docker would unpack this archive"):
        build_layer(context, "FROM scratch\nADD files.tar.gz /x/\n")
    build_layer(context, "FROM scratch\nCOPY files.tar.gz /x/\n")


def test_the_layer_holds_exactly_the_files_copied(make_context: MakeContext) -> None:
    context = make_context({**APP, "secret.env": "KEY=1", ".git/HEAD": "ref"})
    found = members(build_layer(context, "FROM scratch\nCOPY app /app\nCOPY README /\n"))
    assert not [p for p in found if "secret" in p or ".git" in p]
    assert sorted(p for p, m in found.items() if m[0] == "file") == [
        "README", "app/lib/x.txt", "app/run.sh",
    ]  # fmt: skip


# --- reproducible ----------------------------------------------------------------------------


def test_the_same_context_gives_the_same_layer_digest_whatever_its_times(
    make_context: MakeContext, tmp_path: Path
) -> None:
    dockerfile = "FROM scratch\nWORKDIR /app\nCOPY . .\n"
    first = build_layer(make_context(APP), dockerfile)
    second_context = write_tree(tmp_path / "elsewhere" / "ctx", dict(reversed(APP.items())))
    for path in second_context.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = build_layer(second_context, dockerfile)
    assert (first.digest, first.diff_id, first.size) == (second.digest, second.diff_id, second.size)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_any_change_of_content_or_mode_changes_the_digest(make_context: MakeContext) -> None:
    dockerfile = "FROM scratch\nCOPY . /app\n"
    digests = {build_layer(make_context(APP), dockerfile).digest}
    digests.add(build_layer(make_context({**APP, "README": "R"}), dockerfile).digest)
    digests.add(build_layer(make_context({**APP, "README": ("r", 0o600)}), dockerfile).digest)
    assert len(digests) == 3


def test_diff_id_is_the_digest_of_the_uncompressed_tar(make_context: MakeContext) -> None:
    import hashlib

    layer = build_layer(make_context(APP), "FROM scratch\nCOPY . /app\n")
    plain = gzip.decompress(layer.path.read_bytes())
    assert layer.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert layer.digest == "sha256:" + hashlib.sha256(layer.path.read_bytes()).hexdigest()
