"""Packaging a source directory: Docker's ``.dockerignore`` rules, and archives that depend on
nothing but the tree (same tree, same sha256), written exactly as ``tarfile`` would."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import string
import tarfile
import tempfile
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relman_cli import archive, packaging
from relman_cli.errors import CliError
from relman_common.dockerignore import ignore_patterns


def tree(root: Path, files: dict[str, str], modes: dict[str, int] | None = None) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if modes and name in modes:
            path.chmod(modes[name])
    return root


def pack(root: Path, always: tuple[str, ...] = ()) -> tuple[packaging.Archive, bytes]:
    out = io.BytesIO()
    made = packaging.package(root, out, always)
    return made, out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def names(root: Path, always: tuple[str, ...] = ()) -> list[str]:
    return [m.name for m in members(pack(root, always)[1])]


def selected(root: Path, always: tuple[str, ...] = ()) -> list[str]:
    return [path for path, _ in packaging.select(root, always)]


# --- the same tree, the same archive ---------------------------------------------------------


APP = {
    "Dockerfile": "FROM scratch\nCOPY . /app\n",
    "convox.yml": "services:\n  web:\n    build: .\n",
    "bin/web": "#!/bin/sh\necho hi\n",
    "lib/a.txt": "a" * 5000,
    "lib/deep/b.txt": "b",
}


def test_the_same_tree_gives_the_same_sha256_whatever_the_times_and_creation_order(
    tmp_path: Path,
) -> None:
    first = tree(tmp_path / "one", APP, {"bin/web": 0o755})
    second = tree(tmp_path / "two", dict(reversed(APP.items())), {"bin/web": 0o755})
    made, data = pack(first)
    assert made.sha256 == hashlib.sha256(data).hexdigest()
    assert made.size == len(data)
    for i, path in enumerate(sorted(second.rglob("*"))):  # `touch` of everything, and more
        os.utime(path, (1_000_000 + i, 2_000_000 + i), follow_symlinks=False)
    assert pack(second)[0] == made
    assert pack(first)[0] == made


def test_ownership_does_not_change_the_archive(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give files to another owner")
    root = tree(tmp_path / "src", APP)
    before = pack(root)[0]
    for path in root.rglob("*"):
        os.chown(path, 1234, 5678, follow_symlinks=False)
    assert pack(root)[0] == before


def test_content_and_modes_do_change_it(tmp_path: Path) -> None:
    root = tree(tmp_path / "src", APP)
    before = pack(root)[0].sha256
    (root / "bin/web").chmod(0o755)
    after_chmod = pack(root)[0].sha256
    (root / "lib/deep/b.txt").write_text("c")
    assert len({before, after_chmod, pack(root)[0].sha256}) == 3


def test_entries_are_sorted_and_normalised_with_modes_kept(tmp_path: Path) -> None:
    root = tree(tmp_path / "src", APP, {"bin/web": 0o755, "lib/a.txt": 0o600})
    (root / "lib").chmod(0o700)
    made, data = pack(root)
    got = members(data)
    assert [m.name for m in got] == [
        "Dockerfile",
        "bin",
        "bin/web",
        "convox.yml",
        "lib",
        "lib/a.txt",
        "lib/deep",
        "lib/deep/b.txt",
    ]
    assert made.entries == len(got)
    by_name = {m.name: m for m in got}
    assert by_name["bin/web"].mode == 0o755
    assert by_name["lib/a.txt"].mode == 0o600
    assert by_name["lib"].mode == 0o700 and by_name["lib"].isdir()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in got} == {(0, 0, 0, "", "")}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile("lib/a.txt")
        assert extracted is not None and extracted.read() == b"a" * 5000


def test_the_gzip_header_has_no_time_and_no_name(tmp_path: Path) -> None:
    _, data = pack(tree(tmp_path / "src", APP))
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # flags: no FNAME, no FEXTRA, no comment
    assert data[4:8] == b"\0\0\0\0"  # mtime


def test_the_archive_is_exactly_what_tarfile_and_gzip_write(tmp_path: Path) -> None:
    files = {
        **APP,
        "x" * 99 + "/" + "y" * 120: "a long name",
        "ünïcödé/fïlé.txt": "text",
        "big.bin": "z" * (archive.READ_BYTES * 2 + 7),
        "empty": "",
    }
    root = tree(tmp_path / "src", files, {"bin/web": 0o755})
    (root / "link").symlink_to("lib/a.txt")
    (root / "long-link").symlink_to("../" * 40 + "elsewhere")
    made, data = pack(root)
    assert data == reference_archive(root)
    assert made.sha256 == hashlib.sha256(data).hexdigest()


def reference_archive(root: Path) -> bytes:
    """The same archive made the slow, obvious way: tarfile and GzipFile."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(str(p.relative_to(root)) for p in root.rglob("*")):
            info = tar.gettarinfo(root / path, arcname=path)
            info.mtime = info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(root / path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return out.getvalue()


@given(
    name=st.text(string.ascii_letters + string.digits + "._-/é ", min_size=1, max_size=140),
    mode=st.integers(0, 0o7777),
    size=st.sampled_from([0, 1, 511, 512, 8**11 - 1, 8**11]),
    kind=st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]),
    link=st.text(string.ascii_letters + "./ü", max_size=120),
)
def test_headers_are_tarfiles_own(name: str, mode: int, size: int, kind: bytes, link: str) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.size = mode, kind, size
    info.linkname = link if kind == tarfile.SYMTYPE else ""
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert archive.header(name, mode, kind, size, info.linkname) == expected


# --- symbolic links --------------------------------------------------------------------------


def test_symlinks_stay_symlinks_and_are_not_followed(tmp_path: Path) -> None:
    root = tree(tmp_path / "src", {"Dockerfile": "FROM scratch\n", "real/file": "x"})
    (root / "to-file").symlink_to("real/file")
    (root / "to-dir").symlink_to("real")
    (root / "dangling").symlink_to("nowhere")
    got = {m.name: m for m in members(pack(root)[1])}
    assert sorted(got) == ["Dockerfile", "dangling", "real", "real/file", "to-dir", "to-file"]
    assert got["to-file"].issym() and got["to-file"].linkname == "real/file"
    assert got["to-dir"].issym() and got["to-dir"].linkname == "real"
    assert got["dangling"].issym() and got["dangling"].linkname == "nowhere"


# --- .dockerignore ---------------------------------------------------------------------------


SOURCE = {
    "Dockerfile": "FROM scratch\n",
    "convox.yml": "services: {}\n",
    "app.py": "",
    "README.md": "",
    "docs/guide.md": "",
    "docs/keep.md": "",
    "node_modules/a/index.js": "",
    "node_modules/b/index.js": "",
    "src/main.py": "",
    "src/test_main.py": "",
    "src/pkg/test_pkg.py": "",
    "src/pkg/mod.py": "",
    "build/out.o": "",
    "build/keep/me.txt": "",
    "secret.env": "",
    "Secret.ENV": "",
}


def ignoring(tmp_path: Path, patterns: str, files: dict[str, str] | None = None) -> Path:
    root = tree(tmp_path / "src", files or SOURCE)
    (root / ".dockerignore").write_text(patterns)
    return root


def test_a_pattern_excludes_files_and_whole_directories(tmp_path: Path) -> None:
    root = ignoring(tmp_path, "node_modules\n*.md\nsecret.env\n")
    got = names(root)
    assert not any(n.startswith("node_modules") for n in got)
    assert "README.md" not in got and "docs/guide.md" in got  # `*` stays in its directory
    assert "secret.env" not in got
    assert "Secret.ENV" in got  # case-sensitive, as the Docker engine on Linux


def test_double_star_matches_any_number_of_directories(tmp_path: Path) -> None:
    got = names(ignoring(tmp_path, "**/test_*.py\n**/*.md\n"))
    assert "src/main.py" in got and "src/pkg/mod.py" in got
    assert not [n for n in got if "test_" in n or n.endswith(".md")]


def test_exceptions_bring_files_back_and_the_last_matching_line_wins(tmp_path: Path) -> None:
    root = ignoring(tmp_path, "docs\n!docs/keep.md\nbuild\n!build/keep\n*.md\n!README.md\n")
    got = names(root)
    assert "docs/keep.md" in got and "docs/guide.md" not in got
    assert "docs" not in got  # the directory itself stays excluded; its kept file goes in
    assert "build/keep/me.txt" in got and "build/out.o" not in got
    assert "README.md" in got


def test_comments_blank_lines_spaces_and_leading_slashes(tmp_path: Path) -> None:
    got = names(ignoring(tmp_path, "# node_modules\n\n   /build  \n ./docs/guide.md\n"))
    assert "node_modules/a/index.js" in got
    assert not [n for n in got if n.startswith("build")]
    assert "docs/guide.md" not in got and "docs/keep.md" in got


def test_the_dockerignore_and_the_files_the_build_needs_are_always_sent(tmp_path: Path) -> None:
    files = {**SOURCE, "api/Dockerfile.api": "FROM scratch\n"}
    root = ignoring(tmp_path, "*\n.dockerignore\napi\n", files)
    got = names(root, ("Dockerfile", "api/Dockerfile.api", "convox.yml"))
    assert got == [".dockerignore", "Dockerfile", "api/Dockerfile.api", "convox.yml"]


def test_excluding_everything_leaves_the_always_sent_files(tmp_path: Path) -> None:
    root = ignoring(tmp_path, "**\n")
    assert names(root, ("Dockerfile",)) == [".dockerignore", "Dockerfile"]


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="is not a directory"):
        packaging.package(tmp_path / "nope", io.BytesIO())


def test_reading_dockerignore_as_docker_does() -> None:
    text = "\ufeff# comment\n  # not a comment\n\n!  keep \n/abs/path\n/\n"
    assert ignore_patterns(text) == ["# not a comment", "!keep", "abs/path", "/"]


# --- our walk selects what the SDK's walk selects --------------------------------------------

NAMES = st.sampled_from(["a", "b", "Dockerfile", "x.py", "y.md", "node_modules", "keep"])
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)
PATTERNS = st.lists(
    st.one_of(
        PATHS,
        PATHS.map(lambda p: "!" + p),
        st.sampled_from(["*", "**", "*.py", "**/*.md", "!**/keep", "*/a", "a/**/b", "!a/*"]),
    ),
    max_size=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(paths=st.lists(PATHS, min_size=1, max_size=12), patterns=PATTERNS)
def test_the_selection_is_the_sdks(tmp_path: Path, paths: list[str], patterns: list[str]) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    for path in paths:
        target = root / path
        if any(parent.is_file() for parent in target.parents) or target.is_dir():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path)
    (root / ".dockerignore").write_text("\n".join(patterns) + "\n")
    ours = selected(root, ("Dockerfile",))
    # The SDK's own function (names here are lowercase, so its lowering changes nothing);
    # it also lists .dockerignore, which is kept whatever the patterns say.
    sdks = sorted(exclude_paths(str(root), list(patterns), dockerfile="Dockerfile"))
    assert ours == sdks
