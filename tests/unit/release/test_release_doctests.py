"""The worked examples in the doc comments of the Release service and of the shared modules it
is built on are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest
from relman_common import (
    auth,
    errors,
    lifecycle,
    messages,
    pb_enums,
    records,
    request_ids,
    timestamps,
    vocabulary,
)
from relman_common.manifest import lines
from relman_common.manifest import model as manifest_model
from relman_common.manifest import parser as manifest_parser
from relman_common.manifest import proto as manifest_proto
from relman_release.api import converters
from relman_release.domain import builds, composition, deployments, env, paging, tokens
from relman_release.store import codec

MODULES = [
    builds,
    composition,
    deployments,
    env,
    paging,
    tokens,
    codec,
    vocabulary,
    timestamps,
    lifecycle,
    pb_enums,
    errors,
    records,
    messages,
    manifest_parser,
    manifest_proto,
    lines,
    manifest_model,
    auth,
    request_ids,
]
# Run too, though they hold no worked example now: one added later is checked at once.
WITHOUT_EXAMPLES = [converters]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_doc_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("module", WITHOUT_EXAMPLES, ids=lambda m: m.__name__)
def test_doc_examples_of_modules_without_examples_yet_hold(module: ModuleType) -> None:
    assert doctest.testmod(module).failed == 0
