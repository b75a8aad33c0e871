"""The kubelet emulator's rules for the failures it produces (cluster/relman_cluster/
conditions.py) and its log endpoint's answers, without a cluster."""

from __future__ import annotations

import doctest
import ssl
import urllib.error
import urllib.request

import pytest
from relman_cluster import conditions, kubelet_logs
from relman_cluster.conditions import command_exit, memory_exceeded, pull_error, valid_reference
from relman_cluster.logserver import LogServer


@pytest.mark.parametrize("module", [conditions, kubelet_logs])
def test_doc_examples_hold(module: object) -> None:
    failures, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("registry.example/myapp:web.BABCDEFGHI", True),
        ("127.0.0.1:5000/team/app@sha256:" + "a" * 64, True),
        ("busybox", True),
        ("Registry.Example/app:1", True),  # a domain may have capitals
        ("registry.example/MyApp:1", False),
        ("registry.example/app:", False),
        ("registry.example/app:tag with space", False),
        ("", False),
    ],
)
def test_image_references_parse_as_the_kubelet_parses_them(image: str, valid: bool) -> None:
    assert valid_reference(image) is valid


def test_pulls_elsewhere_follow_the_unpullable_mark_and_never_touch_the_network() -> None:
    assert pull_error("registry.example/app:web.1") is None
    error = pull_error("registry.example/app:web.unpullable")
    assert error is not None and error.endswith("registry.example/app:web.unpullable: not found")


def test_an_unreachable_loopback_registry_cannot_be_pulled_from() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = pull_error(f"127.0.0.1:{port}/app:1", timeout=2)
    assert error is not None and "failed to do request" in error


@pytest.mark.parametrize(
    ("container", "code"),
    [
        ({"args": ["sh", "-c", "exit 3"]}, 3),
        ({"command": ["/bin/sh", "-c"], "args": ["migrate && exit 0"]}, 0),
        ({"command": ["false"]}, 1),
        ({"command": ["/bin/true"]}, 0),
        ({"args": ["bin/web", "--exit-code", "2"]}, None),
        ({"args": ["sh", "-c", "exit 3; serve"]}, None),
        ({}, None),
    ],
)
def test_commands_that_plainly_end(container: dict[str, object], code: int | None) -> None:
    assert command_exit(container) == code


def test_memory_over_the_limit_only() -> None:
    limited = {"resources": {"limits": {"memory": "64Mi"}}}
    assert memory_exceeded(limited, {"RELMAN_KUBELET_MEMORY_USAGE": "65Mi"})
    assert not memory_exceeded(limited, {"RELMAN_KUBELET_MEMORY_USAGE": "64Mi"})
    assert not memory_exceeded({}, {"RELMAN_KUBELET_MEMORY_USAGE": "1Gi"})  # no limit
    assert not memory_exceeded(limited, {})


def test_the_log_endpoint_answers_over_https() -> None:
    asked: list[tuple[str, str, str, bool]] = []

    def source(ns: str, pod: str, container: str, previous: bool) -> tuple[int, str]:
        asked.append((ns, pod, container, previous))
        if pod == "waiting":
            return 400, 'container "main" in pod "waiting" is waiting to start: ErrImagePull\n'
        return 200, "one\ntwo\nthree"

    server = LogServer(source)
    server.start()
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # as kube-apiserver without a kubelet CA
    base = f"https://127.0.0.1:{server.port}"
    try:
        url = f"{base}/containerLogs/ns1/web-1/main?tailLines=2&previous=true"
        with urllib.request.urlopen(url, context=insecure, timeout=5) as resp:
            assert resp.read().decode() == "two\nthree\n"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/containerLogs/ns1/waiting/main", context=insecure)
        assert refused.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(f"{base}/stats/summary", context=insecure)
        assert unknown.value.code == 404
    finally:
        server.stop()
    assert asked == [("ns1", "web-1", "main", True), ("ns1", "waiting", "main", False)]
