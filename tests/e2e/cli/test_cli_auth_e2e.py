"""The ``relman`` command with authentication and TLS, against both services as processes.

Proves: with no token configured the CLI uses the local admin token (as next to ``make run``);
``tokens create`` prints the secret once, ``tokens`` lists, ``tokens revoke`` revokes; a
revoked token's call prints the one ERROR line and exits 1, on both services; the whole
promote path works over TLS with only ``RELMAN_TLS_CA`` set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.helpers import wait_for
from support.security import make_pki

from .cli_stack import Stack, start_stack

pytestmark = pytest.mark.xdist_group("cli-real-deployer")

UNAUTHENTICATED = (
    "ERROR: missing or invalid token (set RELMAN_TOKEN or use the local admin token)\n"
)
AGO = r"(?:now|\d+ seconds? ago|1 minute ago)"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path, "0.02")
    try:
        yield s
    finally:
        s.stop()


def test_tokens_create_list_and_revoke_and_a_revoked_token_is_refused(stack: Stack) -> None:
    created = stack.run("tokens", "create", "alice")
    assert created.code == 0, created
    secret = created.out.strip()
    assert re.fullmatch(r"rmt_[A-Za-z0-9_-]{43}", secret) and created.lines == [secret]
    assert "only time" in created.err and secret not in created.err

    as_alice = {"RELMAN_TOKEN": secret}
    made = stack.run("apps", "create", "myapp", env=as_alice)
    assert (made.code, made.lines) == (0, ["Creating myapp... OK"])
    listed = stack.run("apps", "-o", "json", env=as_alice)
    assert [(a["name"], a["actor"]) for a in json.loads(listed.out)] == [("myapp", "alice")]
    assert stack.run("deployments", "-a", "myapp", env=as_alice).code == 0

    table = stack.run("tokens")
    assert table.code == 0, table
    assert table.lines[0].split() == ["NAME", "KIND", "CREATED", "REVOKED", "ACTOR"]
    rows = {line.split()[0]: line for line in table.lines[1:]}
    assert set(rows) == {"admin", "deployer", "alice"}
    assert re.fullmatch(rf"alice +user +{AGO} +admin", rows["alice"]), rows["alice"]
    assert rows["deployer"].split()[1] == "service"
    as_json = json.loads(stack.run("tokens", "list", "-o", "json").out)
    assert {(t["name"], t["kind"]) for t in as_json} == {
        ("admin", "admin"),
        ("deployer", "service"),
        ("alice", "user"),
    }
    assert all("secret" not in t for t in as_json)

    revoked = stack.run("tokens", "revoke", "alice")
    assert (revoked.code, revoked.lines, revoked.err) == (0, ["Revoking alice... OK"], "")
    after = stack.run("tokens").out
    assert re.search(rf"^alice +user +{AGO} +{AGO} +admin$", after, re.MULTILINE), after

    refused = stack.run("apps", env=as_alice)
    assert (refused.code, refused.out, refused.err) == (1, "", UNAUTHENTICATED)

    def deployer_refuses() -> bool:
        # The Deployer trusts a verified token for up to 2 s before asking again.
        done = stack.run("deployments", "-a", "myapp", env=as_alice)
        return (done.code, done.out, done.err) == (1, "", UNAUTHENTICATED)

    wait_for(deployer_refuses, timeout=20, what="the Deployer to refuse the revoked token")


def test_a_wrong_token_is_refused_with_the_error_line(stack: Stack) -> None:
    wrong = stack.run("apps", env={"RELMAN_TOKEN": "rmt_" + "x" * 43})
    assert (wrong.code, wrong.err) == (1, UNAUTHENTICATED)
    # RELMAN_TOKEN wins over the local admin token.
    assert stack.run("tokens", env={"RELMAN_TOKEN": "nonsense"}).err == UNAUTHENTICATED


def test_only_admins_manage_tokens(stack: Stack) -> None:
    secret = stack.run("tokens", "create", "bob").out.strip()
    refused = stack.run("tokens", "create", "eve", env={"RELMAN_TOKEN": secret})
    assert refused.code == 1 and refused.err.startswith("ERROR: "), refused
    assert "eve" not in stack.run("tokens").out
    bad_kind = stack.run("tokens", "create", "x", "--kind", "root")
    assert bad_kind.code == 2 and "root" in bad_kind.err


def test_the_cli_promotes_through_tls_services_with_only_the_ca_configured(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path / "pki")
    stack = start_stack(tmp_path, "0.02", pki=pki)
    try:
        assert stack.relman("apps", "create", "myapp")[:2] == (0, ["Creating myapp... OK"])
        code, lines, err = stack.relman(
            "builds", "import", "--image", "web=registry/web:1", "-a", "myapp"
        )
        assert (code, err) == (0, ""), lines
        release = lines[-1].removeprefix("Release: ")
        code, lines, err = stack.relman("releases", "promote", release, "-a", "myapp")
        assert (code, err, lines[-1]) == (0, "", "OK")
        code, lines, _ = stack.relman("deployments", "-a", "myapp")
        assert lines[1].split()[1:4] == [release, "succeeded", "admin"]
        assert "(TLS)" in stack.release.logs() and "(TLS)" in stack.deployer.logs()

        # Trusting another CA, the server's certificate is refused: no connection.
        untrusted = stack.run("apps", env={"RELMAN_TLS_CA": str(pki.client_ca)})
        assert (untrusted.code, untrusted.err) == (
            1,
            f"ERROR: TLS handshake with the Release service at {stack.release.addr} failed "
            "(is RELMAN_TLS_CA, or the rack's tls_ca, the CA that signed its certificate?)\n",
        )
        # Plaintext to a TLS port fails too.
        plain = stack.run("apps", env={"RELMAN_TLS_CA": ""})
        assert (plain.code, plain.err.startswith("ERROR: cannot reach")) == (1, True), plain
    finally:
        stack.stop()
