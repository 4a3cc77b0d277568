"""Setting authentication up: safe defaults, the keys file, settings, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.auth.api_keys import ApiKeys, KeysFileError, sha256_hex
from gateway.auth.authenticator import (
    AuthSetupError,
    anonymous_warning,
    build_authenticator,
    is_loopback,
)
from gateway.auth.scopes import Scope
from gateway.cli import main
from gateway.settings import Settings
from tests.gateway.auth.conftest import auth_settings, authed_gateway, body, call
from tests.gateway.conftest import HookRelay

QUERY = '{ exportJob(id: "x") { id } }'


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type,call-arg]


# --- safe defaults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104  # the address under test
        ("::", False),
        ("10.0.0.5", False),
        ("gateway.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_without_credentials_a_loopback_gateway_serves_anyone() -> None:
    authenticator = build_authenticator(settings(host="127.0.0.1"))
    assert not authenticator.enabled
    assert anonymous_warning(settings()) is not None
    assert anonymous_warning(settings(api_keys_file=Path("k.toml"))) is None


def test_without_credentials_another_address_is_refused() -> None:
    with pytest.raises(
        AuthSetupError, match=r"refusing to serve without authentication on 0\.0\.0\.0"
    ):
        build_authenticator(settings(host="0.0.0.0"))  # noqa: S104


def test_allow_anonymous_lets_another_address_serve_anyone() -> None:
    authenticator = build_authenticator(settings(host="0.0.0.0", allow_anonymous=True))  # noqa: S104
    assert not authenticator.enabled


def test_a_jwks_without_issuer_and_audience_is_refused() -> None:
    with pytest.raises(AuthSetupError, match="needs UCD_GATEWAY_JWT_ISSUER"):
        build_authenticator(settings(jwt_jwks_url="https://id.example.test/jwks.json"))


def test_credentials_make_introspection_and_graphiql_default_to_off(tmp_path: Path) -> None:
    keys = tmp_path / "k.toml"
    assert settings().introspection
    assert settings().graphiql
    configured = settings(api_keys_file=keys)
    assert (configured.introspection, configured.graphiql) == (False, False)
    explicit = settings(api_keys_file=keys, introspection=True, graphiql=True)
    assert (explicit.introspection, explicit.graphiql) == (True, True)
    by_jwks = settings(jwt_jwks_url="https://id/jwks")
    assert (by_jwks.introspection, by_jwks.graphiql) == (False, False)


def test_pii_attributes_are_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCD_GATEWAY_PII_ATTRIBUTES", "loyalty_card, home_address,,")
    assert Settings(_env_file=None).pii_attributes == ("loyalty_card", "home_address")  # type: ignore[call-arg]


# --- the keys file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("k.toml", "keys = 3", "expected a list named keys", id="no-list"),
        pytest.param("k.toml", "[[keys]\n", "is not valid TOML", id="bad-toml"),
        pytest.param("k.json", "{", "is not valid JSON", id="bad-json"),
        pytest.param(
            "k.toml",
            '[[keys]]\nid = "a"\nsha256 = "abc"\nscopes = []',
            "keys[0].sha256 must be 64 hex digits",
            id="short-digest",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = ["profile:raed"]',
            "unknown scope 'profile:raed'",
            id="unknown-scope",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = "export"',
            "keys[0].scopes must be a list",
            id="scopes-not-a-list",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = ""\nsha256 = "{"a" * 64}"\nscopes = []',
            "keys[0].id must be a non-empty string",
            id="empty-id",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = []\nrate_limit = "fast"',
            "keys[0].rate_limit must look like 600/minute",
            id="bad-rate-limit",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = []\nsecret = "x"',
            "unknown fields: secret",
            id="unknown-field",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = []\n'
            f'[[keys]]\nid = "a"\nsha256 = "{"b" * 64}"\nscopes = []',
            "keys[1].id 'a' is used twice",
            id="duplicate-id",
        ),
        pytest.param(
            "k.toml",
            f'[[keys]]\nid = "a"\nsha256 = "{"a" * 64}"\nscopes = []\n'
            f'[[keys]]\nid = "b"\nsha256 = "{"a" * 64}"\nscopes = []',
            "keys[1].sha256 is the digest of another entry",
            id="duplicate-digest",
        ),
        pytest.param("k.json", "[1]", "expected a list named keys", id="json-list"),
        pytest.param("k.json", '{"keys": [1]}', "keys[0] must be a table", id="json-entry"),
    ],
)
def test_a_bad_keys_file_is_one_clear_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(KeysFileError) as caught:
        ApiKeys.load(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_keys_file_refuses_to_build(tmp_path: Path) -> None:
    with pytest.raises(AuthSetupError, match="cannot read the API keys file"):
        build_authenticator(settings(api_keys_file=tmp_path / "absent.toml"))


def test_a_key_with_its_rate_limit_is_found_by_its_digest_only(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # sha256("test")
    path.write_text(
        f'[[keys]]\nid = "a"\nsha256 = "{digest.upper()}"\nscopes = ["export"]\n'
        'rate_limit = "600/minute"\n'
    )
    keys = ApiKeys.load(path)
    assert len(keys) == 1
    found = keys.find("test")
    assert found is not None
    assert (found.id, found.scopes, found.rate_limit) == (
        "a",
        frozenset({Scope.EXPORT}),
        "600/minute",
    )
    assert keys.find("tes") is None
    assert keys.find(digest) is None


# --- the command line -----------------------------------------------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    return subprocess.run(  # noqa: S603  # our own interpreter and module
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
        check=False,
    )


def test_serving_on_a_public_address_without_credentials_exits_with_one_line(
    tmp_path: Path,
) -> None:
    result = _cli(
        "serve",
        UCD_GATEWAY_HOST="0.0.0.0",  # noqa: S104
        UCD_GATEWAY_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_DATA_DIR=str(tmp_path / "ucd"),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ucd-gateway serve: refusing to serve without authentication on 0.0.0.0: set "
        "UCD_GATEWAY_API_KEYS_FILE or UCD_GATEWAY_JWT_JWKS_URL, or "
        "UCD_GATEWAY_ALLOW_ANONYMOUS=true to serve anyone with every scope"
    ]


def test_serving_on_loopback_without_credentials_warns_with_one_line(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    env = {
        **clean,
        "UCD_GATEWAY_PORT": "0",
        "UCD_GATEWAY_LOCAL_UCD_PORT": "0",
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(tmp_path / "ucd"),
    }
    command = [sys.executable, "-m", "gateway", "serve"]
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert banner.startswith("ucd-gateway: GraphiQL on http://127.0.0.1:")
        finally:
            process.terminate()
            _, errors = process.communicate(timeout=20)
    warnings = [line for line in errors.splitlines() if "WARNING gateway.auth" in line]
    assert len(warnings) == 1
    assert "no authentication configured: anyone who reaches 127.0.0.1" in warnings[0]


def test_an_unknown_scope_on_the_command_line_is_one_line() -> None:
    result = _cli("api-key", "create", "--id", "crm", "--scopes", "profile:read,exprt")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "unknown scope 'exprt'" in line


async def test_a_created_key_works_once_its_entry_is_in_the_keys_file(
    tmp_path: Path, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> None:
    result = _cli("api-key", "create", "--id", "crm-sync", "--scopes", "export", "profile:read")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    key = lines[1].strip()
    assert key.startswith("ucdg_")
    entry = result.stdout[result.stdout.index("[[keys]]") :]
    assert key not in entry  # the file holds the digest only
    path = tmp_path / "keys.toml"
    path.write_text(entry)
    async with authed_gateway(auth_settings(path, None), ucd_http, hooks) as gateway:
        accepted = await call(gateway, QUERY, token=key)
        refused = await call(gateway, QUERY, token=key[:-1])
    assert body(accepted)["data"] == {"exportJob": None}
    assert refused.status_code == 401


def test_api_key_create_prints_a_fresh_key_and_only_its_digest_in_the_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["api-key", "create", "--id", "crm", "--scopes", "export,pii:read"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[1].strip()
    assert key.startswith("ucdg_")
    assert len(key) > 40
    assert out.endswith(
        f'[[keys]]\nid = "crm"\nsha256 = "{sha256_hex(key)}"\nscopes = ["export", "pii:read"]\n'
    )
    assert main(["api-key", "create", "--id", "crm", "--scopes", "export"]) == 0
    assert key not in capsys.readouterr().out  # a new key every time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--id", " ", "--scopes", "export"], "--id must not be empty", id="empty-id"),
        pytest.param(["--id", "a", "--scopes", ","], "at least one scope", id="no-scope"),
    ],
)
def test_api_key_create_refuses_bad_arguments_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["api-key", "create", *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert message in line
