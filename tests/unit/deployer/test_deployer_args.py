"""The Deployer's command line: authentication on by default, token file, TLS both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from relman_deployer.__main__ import parse_args, settings_from
from support.security import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RELMAN_AUTH",
        "RELMAN_DEPLOYER_TOKEN",
        "RELMAN_DEPLOYER_TOKEN_FILE",
        "RELMAN_TLS_CERT",
        "RELMAN_TLS_KEY",
        "RELMAN_TLS_CLIENT_CA",
        "RELMAN_TLS_CA",
        "RELMAN_TLS_CLIENT_CERT",
        "RELMAN_TLS_CLIENT_KEY",
        "RELMAN_DATABASE_URL",
        "RELMAN_KUBECONFIG",
        "RELMAN_KUBE_CONTEXT",
        "RELMAN_NAMESPACE_PREFIX",
    ):
        monkeypatch.delenv(name, raising=False)


def test_authentication_is_on_by_default_with_the_token_file_in_the_data_dir(
    tmp_path: Path,
) -> None:
    settings = settings_from(parse_args(["--data-dir", str(tmp_path)]))
    assert (settings.auth, settings.token_file, settings.token) == (
        True,
        tmp_path / "deployer.token",
        "",
    )
    assert (settings.tls, settings.release_tls) == (None, None)
    assert settings_from(parse_args(["--data-dir", str(tmp_path), "--no-auth"])).auth is False


def test_the_environment_sets_auth_and_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELMAN_AUTH", "off")
    monkeypatch.setenv("RELMAN_DEPLOYER_TOKEN_FILE", str(tmp_path / "elsewhere.token"))
    monkeypatch.setenv("RELMAN_DEPLOYER_TOKEN", "rmt_given")
    settings = settings_from(parse_args(["--data-dir", str(tmp_path)]))
    assert (settings.auth, settings.token_file, settings.token) == (
        False,
        tmp_path / "elsewhere.token",
        "rmt_given",
    )


def test_tls_flags_serve_tls_and_reach_the_release_service_over_tls(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELMAN_TLS_CA", str(pki.ca))
    args = parse_args(
        [
            "--data-dir",
            str(tmp_path),
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
            "--tls-client-ca",
            str(pki.client_ca),
        ]
    )
    settings = settings_from(args)
    assert settings.tls is not None and settings.tls.client_ca == pki.client_ca
    assert settings.release_tls is not None and settings.release_tls.ca == pki.ca


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "c.pem"], "needs both a certificate"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.key"], "TLS file not found"),
        (["--release-tls-client-cert", "c.pem"], "needs its key"),
        (["--release-tls-ca", "missing-ca.pem"], "TLS file not found: missing-ca.pem"),
    ],
)
def test_bad_tls_settings_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        parse_args(args)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_kubernetes_backend_options_come_from_flags(tmp_path: Path) -> None:
    args = [
        "--data-dir",
        str(tmp_path),
        "--backend",
        "kubernetes",
        "--kubeconfig",
        "/etc/kube/config",
        "--kube-context",
        "prod",
        "--namespace-prefix",
        "acme",
    ]
    settings = settings_from(parse_args(args))
    assert settings.backend_options == {
        "kubeconfig": "/etc/kube/config",
        "context": "prod",
        "namespace_prefix": "acme",
    }


def test_sim_backend_takes_the_pod_delay_and_namespace_prefix(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path), "--sim-pod-delay", "0.25"]
    settings = settings_from(parse_args(args))
    assert settings.backend_options == {"pod_delay": 0.25, "namespace_prefix": "relman"}
