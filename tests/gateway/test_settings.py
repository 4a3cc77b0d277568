"""Settings: environment prefix, .env file, defaults and the secret token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gateway.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own UCD_GATEWAY_* variables must not change these tests."""
    for name in list(os.environ):
        if name.upper().startswith("UCD_GATEWAY_"):
            monkeypatch.delenv(name)


def test_defaults_select_the_embedded_local_ucd() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ucd_base_url is None
    assert settings.partner == "local"
    assert settings.token.get_secret_value() == "local-dev-token"
    assert settings.local_ucd_data_dir == Path(".local-ucd")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_concurrency == 16
    assert settings.max_concurrency_reads is None  # then max_concurrency
    assert (settings.max_concurrency_writes, settings.max_concurrency_identity) == (8, 4)
    assert settings.max_concurrency_exports == 2
    assert (settings.breaker_failures, settings.breaker_cooldown) == (5, 5.0)
    assert settings.upsert_window_ms == 0.0  # group commit: a lone write goes at once


def test_environment_variables_use_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCD_GATEWAY_UCD_BASE_URL", "https://unification.useinsider.com")
    monkeypatch.setenv("UCD_GATEWAY_PARTNER", "acme")
    monkeypatch.setenv("UCD_GATEWAY_TOKEN", "tok-from-env")
    monkeypatch.setenv("UCD_GATEWAY_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("UCD_GATEWAY_MAX_QUERY_DEPTH", "7")
    monkeypatch.setenv("PARTNER", "not-this-one")  # unprefixed names are ignored
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ucd_base_url == "https://unification.useinsider.com"
    assert settings.partner == "acme"
    assert settings.token.get_secret_value() == "tok-from-env"
    assert settings.request_timeout == 2.5
    assert settings.max_query_depth == 7


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "UCD_GATEWAY_PARTNER=from-dotenv\nUCD_GATEWAY_PORT=9001\nUCD_GATEWAY_TOKEN=dotenv-tok\n"
    )
    monkeypatch.setenv("UCD_GATEWAY_PORT", "9002")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.partner == "from-dotenv"
    assert settings.token.get_secret_value() == "dotenv-tok"
    assert settings.port == 9002


def test_token_never_shows_in_repr_str_or_dump() -> None:
    settings = Settings(token=SecretStr("very-secret-123"), _env_file=None)  # type: ignore[call-arg]
    assert "very-secret-123" not in repr(settings)
    assert "very-secret-123" not in str(settings)
    assert "very-secret-123" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("UCD_GATEWAY_PORT", "70000", id="port-too-big"),
        pytest.param("UCD_GATEWAY_MAX_CONCURRENCY", "0", id="no-concurrency"),
        pytest.param("UCD_GATEWAY_REQUEST_TIMEOUT", "-1", id="negative-timeout"),
        pytest.param("UCD_GATEWAY_HTTP_TRANSPORT", "curl", id="unknown-transport"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, "http://127.0.0.1:8000", id="default"),
        pytest.param(
            {"host": "0.0.0.0", "port": 8080},  # noqa: S104  # the bind-all case under test
            "http://127.0.0.1:8080",
            id="any-address",
        ),
        pytest.param({"host": "gw.internal", "port": 81}, "http://gw.internal:81", id="named-host"),
        pytest.param(
            {"public_url": "https://gw.example.com/"}, "https://gw.example.com", id="public-url"
        ),
    ],
)
def test_webhook_base_url(kwargs: dict[str, object], expected: str) -> None:
    settings = Settings(_env_file=None, **kwargs)  # type: ignore[call-arg, arg-type]
    assert settings.webhook_base_url() == expected
