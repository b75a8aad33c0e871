"""The worked examples in the Release service's doc comments are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest
from relman_common import auth
from relman_release.api import converters
from relman_release.domain import composition, env, manifest, paging, tokens
from relman_release.store import codec


@pytest.mark.parametrize(
    "module", [composition, env, manifest, paging, tokens, codec, converters, auth]
)
def test_doc_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
