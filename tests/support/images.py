"""What the images package's tests share (tests/unit/release/images, and the images run with
docker in tests/e2e/containers): build contexts made from a dict of files, and a local builder
on an OCI layout store in the test's directory.

The fixtures here are imported by the conftest.py of the folders that use them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from relman_release.images.layout import LayoutStore
from relman_release.images.local import LocalBuilder

# A file's text, or (text, mode).
FileSpec = str | tuple[str, int]
MakeContext = Callable[[Mapping[str, FileSpec]], Path]


def write_tree(root: Path, files: Mapping[str, FileSpec]) -> Path:
    """Write ``files`` (relative path -> text or (text, mode)) under ``root``; a path ending
    in ``/`` is an empty directory, and ``"-> target"`` text makes a symbolic link."""
    root.mkdir(parents=True, exist_ok=True)
    for name, spec in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
            continue
        text, mode = (spec, 0o644) if isinstance(spec, str) else spec
        if text.startswith("-> "):
            os.symlink(text[3:], path)
            continue
        path.write_text(text)
        path.chmod(mode)
    return root


@pytest.fixture
def make_context(tmp_path: Path) -> MakeContext:
    """A new build context directory holding the files given."""
    made = 0

    def make(files: Mapping[str, FileSpec]) -> Path:
        nonlocal made
        made += 1
        return write_tree(tmp_path / f"context{made}", files)

    return make


@pytest.fixture
def layout(tmp_path: Path) -> LayoutStore:
    return LayoutStore(tmp_path / "data" / "images")


@pytest.fixture
def local_builder(layout: LayoutStore, tmp_path: Path) -> LocalBuilder:
    work = tmp_path / "work"
    work.mkdir()
    return LocalBuilder(layout, work_dir=work)
