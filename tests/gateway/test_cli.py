"""The ucd-gateway command: schema, local-ucd, seed, and clear configuration errors."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.cli import _check_ucd, main
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.settings import Settings, reachable_host
from gateway.ucd.demo_data import SEGMENTS, demo_users
from tests.gateway.cli_process import serving
from tests.gateway.conftest import app_gateway, runtime


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer .env or UCD_GATEWAY_* variable may reach the command."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("UCD_GATEWAY_"):
            monkeypatch.delenv(name)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ...`` in a child process, as a user would run it."""
    return subprocess.run(  # noqa: S603  # our own interpreter and module
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


# --- schema ------------------------------------------------------------------------------


def test_schema_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    sdl = capsys.readouterr().out
    assert "type Query {" in sdl
    assert "upsertUsers(input: UpsertUsersInput!): UpsertUsersPayload!" in sdl
    assert sdl.endswith("}\n")


# --- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        pytest.param(("local-ucd", "--port", "70000"), {}, "port must be", id="port"),
        pytest.param(
            ("local-ucd", "--data", "a-file"), {}, "exists and is not a folder", id="data-file"
        ),
        pytest.param(
            ("local-ucd",), {"UCD_GATEWAY_PARTNER": "Not Valid"}, "partner name", id="partner"
        ),
        pytest.param(("serve",), {"UCD_GATEWAY_PORT": "many"}, "UCD_GATEWAY_PORT", id="env"),
        pytest.param(("serve", "--port", "99999"), {}, "--port", id="port-flag"),
        pytest.param(
            ("serve",),
            {"UCD_GATEWAY_TRUSTED_DOCUMENTS_ONLY": "true"},
            "UCD_GATEWAY_TRUSTED_DOCUMENTS_ONLY: true needs UCD_GATEWAY_TRUSTED_DOCUMENTS",
            id="trusted-only-without-manifest",
        ),
        pytest.param(
            ("serve",),
            {"UCD_GATEWAY_TRUSTED_DOCUMENTS": "absent.json", "UCD_GATEWAY_PORT": "0"},
            "cannot read the trusted documents absent.json",
            id="manifest-missing",
        ),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], words: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert words in lines[0]
    assert lines[0].startswith(f"ucd-gateway {args[0]}: ")


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        pytest.param(("serve", "--port", "-1"), {}, "--port", id="port-negative"),
        pytest.param(("serve",), {"UCD_GATEWAY_PORT": "70000"}, "UCD_GATEWAY_PORT", id="port-env"),
        pytest.param(
            ("serve",),
            {"UCD_GATEWAY_UCD_BASE_URL": "unification.useinsider.com"},
            "UCD_GATEWAY_UCD_BASE_URL: must be an http(s) URL",
            id="url-no-scheme",
        ),
        pytest.param(
            ("serve",),
            {"UCD_GATEWAY_UCD_BASE_URL": "http://127.0.0.1:99999"},
            "UCD_GATEWAY_UCD_BASE_URL",
            id="url-port",
        ),
        pytest.param(
            ("serve",), {"UCD_GATEWAY_LOG_FORMAT": "xml"}, "UCD_GATEWAY_LOG_FORMAT", id="log-format"
        ),
        pytest.param(("serve", "--nope"), {}, "unrecognized arguments: --nope", id="option"),
        pytest.param(("seed", "--users", "many"), {}, "--users", id="seed-int"),
    ],
)
def test_every_start_up_error_is_one_line(
    args: tuple[str, ...],
    env: dict[str, str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In process (quicker than a child each); the child of the test above shows no
    traceback reaches the terminal."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code: int | str | None
    try:
        code = main(list(args))
    except SystemExit as exited:  # argparse's own refusals
        code = exited.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert words in lines[0]
    # argparse reports an unknown option as the top-level command's.
    assert lines[0].startswith((f"ucd-gateway {args[0]}: ", "ucd-gateway: "))


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ucd-gateway {version('ucd-gateway')}"


@pytest.mark.parametrize(
    ("command", "options", "variables"),
    [
        pytest.param("serve", ("--host", "--port"), tuple(Settings.model_fields), id="serve"),
        pytest.param(
            "local-ucd",
            ("--host", "--port", "--data", "--strict-limits"),
            ("partner", "token", "local_ucd_data_dir", "log_level", "log_format"),
            id="local-ucd",
        ),
        pytest.param(
            "seed",
            ("--users", "--seed", "--data", "--ucd-url", "--no-progress"),
            ("partner", "token", "local_ucd_data_dir"),
            id="seed",
        ),
        pytest.param("schema", (), (), id="schema"),
    ],
)
def test_every_commands_help_lists_its_options_and_variables(
    command: str,
    options: tuple[str, ...],
    variables: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text
    for name in variables:
        assert f"UCD_GATEWAY_{name.upper()}" in text
    if not variables:
        assert "no UCD_GATEWAY_* variable applies" in text
    # The token's value is never shown, not even its default.
    assert "local-dev-token" not in text


def test_an_unreachable_ucd_is_one_warning_and_readyz_is_503_until_it_answers(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with serving(tmp_path, UCD_GATEWAY_UCD_BASE_URL=url, UCD_GATEWAY_BREAKER_COOLDOWN="0.2") as (
        base,
        stderr,
    ):
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        command = [sys.executable, "-m", "gateway", "local-ucd", "--port", str(port)]
        with subprocess.Popen(  # noqa: S603  # our own interpreter and module
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path
        ) as ucd:
            try:
                assert ucd.stdout is not None
                assert "local UCD on" in ucd.stdout.readline()
                assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            finally:
                ucd.terminate()
                ucd.communicate(timeout=10)
    # Start-up lines have no request id ("-"); /readyz's own calls log as they always
    # have; gateway.auth warns of its own when no authentication is configured; the
    # client's retry lines of the check are summed up in the one warning.
    warnings = [line for line in stderr if " WARNING gateway.cli -: " in line]
    assert not [line for line in stderr if " gateway.ucd -: " in line]
    assert len(warnings) == 1, stderr
    assert f"UCD at {url} as partner local does not answer" in warnings[0]
    assert "/readyz answers 503" in warnings[0]
    assert not any("gateway ready" in line for line in stderr)
    assert "Traceback" not in "\n".join(stderr)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("serve",), id="serve"),
        pytest.param(("seed", "--users", "1", "--no-progress"), id="seed"),
    ],
)
def test_a_data_folder_of_a_newer_local_ucd_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    data = tmp_path / "newer"
    data.mkdir()
    with sqlite3.connect(data / "ucd.sqlite3") as conn:
        conn.execute("PRAGMA user_version=999")
    env = {
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(data),
        "UCD_GATEWAY_PORT": "0",
        "UCD_GATEWAY_LOCAL_UCD_PORT": "0",
    }
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"ucd-gateway {args[0]}: ")
    assert "newer local UCD" in result.stderr


@pytest.mark.parametrize(
    ("host", "shown"),
    [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("::1", "[::1]"), ("10.1.2.3", "10.1.2.3")],  # noqa: S104  # addresses as data, nothing binds
)
def test_the_banner_shows_an_address_a_browser_can_open(host: str, shown: str) -> None:
    assert reachable_host(host) == shown


def test_local_ucd_serves_and_prints_how_to_reach_it_without_its_token(tmp_path: Path) -> None:
    """The banner names the partner and where the token comes from, never the token."""
    secret = "s3cret-token-9f2c"
    command = [sys.executable, "-m", "gateway", "local-ucd", "--port", "0", "--data", "ucd"]
    env = {**os.environ, "UCD_GATEWAY_TOKEN": secret}
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(4)]
            base_url = banner[0].split(" on ", 1)[1].strip()
            assert base_url.startswith("http://127.0.0.1:")
            assert banner[1].split() == ["partner:", "local"]
            assert banner[2].strip() == "token:   set by UCD_GATEWAY_TOKEN (not shown)"
            assert banner[3].split()[0] == "data:"
            health = httpx.get(f"{base_url}/healthz", timeout=5)
            assert health.json() == {"status": "ok"}
            columns = httpx.post(
                f"{base_url}/api/user/v3/metadata/columns",
                json={"table": "contacts"},
                headers={"X-PARTNER-NAME": "local", "X-REQUEST-TOKEN": secret},
                timeout=5,
            )
            assert columns.status_code == 200
        finally:
            process.terminate()
            rest, errors = process.communicate(timeout=10)
    assert secret not in "".join(banner) + rest + errors
    assert (tmp_path / "ucd" / "ucd.sqlite3").exists()


# --- seed ----------------------------------------------------------------------------------


async def test_seed_writes_users_that_can_be_read_back_through_the_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "ucd"
    # main() runs its own event loop: run it in a worker thread from this async test.
    code = await asyncio.to_thread(
        main, ["seed", "--users", "25", "--seed", "7", "--data", str(data), "--no-progress"]
    )
    assert code == 0
    assert "seeded 25 users (0 failed); segments 2, 3" in capsys.readouterr().out

    expected = list(demo_users(25, seed=7))[11]
    uuid = expected.user.uuid
    local = create_local_ucd_app(LocalUcdConfig(data_dir=data))
    async with LifespanManager(local) as ucd:
        upstream = httpx.AsyncClient(
            transport=httpx.ASGITransport(ucd.app), base_url="http://local-ucd"
        )
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        gateway = create_app(settings, http_client=upstream)
        async with LifespanManager(gateway) as gw:
            transport = httpx.ASGITransport(gw.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                response = await client.post(
                    "/graphql",
                    json={
                        "query": "query($u: String!) { user(key: {uuid: $u}) "
                        '{ email name city attribute(name: "tier", custom: true) { value } } }',
                        "variables": {"u": uuid},
                    },
                )
                segments = await upstream.get(
                    "/api/local/v1/segments",
                    headers={"X-PARTNER-NAME": "local", "X-REQUEST-TOKEN": "local-dev-token"},
                )
        await upstream.aclose()
    user = orjson.loads(response.content)["data"]["user"]
    attributes = expected.attributes
    assert user == {
        "email": expected.user.email,
        "name": attributes["name"],
        "city": attributes["city"],
        "attribute": {"value": expected.custom_attributes["tier"]},
    }
    names = [s["name"] for s in segments.json()["segments"]]
    assert names == ["All users", *(s.name for s in SEGMENTS)]


def test_seed_again_reuses_the_demo_segments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["seed", "--users", "3", "--data", str(tmp_path / "ucd"), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["seeded 3 users (0 failed); segments 2, 3"] * 2


def test_seed_refuses_zero_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--users", "0"]) == 2
    assert "--users must be at least 1" in capsys.readouterr().err


def test_seed_against_an_unreachable_ucd_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before seeding: nobody listens there
    code = main(["seed", "--users", "1", "--no-progress", "--ucd-url", f"http://127.0.0.1:{port}"])
    assert code == 1
    assert "ucd-gateway seed: cannot reach the UCD" in capsys.readouterr().err


async def test_the_start_up_check_says_ready_only_when_the_ucd_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process, the check ``serve`` runs before its banner (the test above runs it)."""

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    caplog.set_level(logging.INFO)
    async with app_gateway(down) as (_, app):
        await _check_ucd(app, runtime(app).settings)
    async with app_gateway() as (_, app):
        await _check_ucd(app, runtime(app).settings)
    lines = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    down_lines = [line for line in lines if "does not answer" in line[2]]
    assert len(down_lines) == 1
    assert down_lines[0][:2] == ("WARNING", "gateway.cli")
    assert not any(name == "gateway.ucd" for _, name, _ in lines)
    ready = [line for line in lines if line[2].startswith("gateway ready; UCD at http://ucd")]
    assert len(ready) == 1
    assert logging.getLogger("gateway.ucd").level == logging.NOTSET
