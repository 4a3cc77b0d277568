"""The ``ucd-gateway`` command (also ``python -m gateway``).

    ucd-gateway [serve]            the gateway (default), on the embedded local UCD unless
                                   UCD_GATEWAY_UCD_BASE_URL is set; --workers N: N processes
                                   on one port (needs UCD_GATEWAY_REDIS_URL)
    ucd-gateway local-ucd          only the local UCD, for other clients
    ucd-gateway schema             print the GraphQL SDL
    ucd-gateway seed --users N     demo users, events and segments into the local UCD
    ucd-gateway api-key create --id ID --scopes S [S ...]
                                   a new API key (printed once) and its keys file entry

Configuration errors (a bad argument or setting, a port out of range, a malformed UCD
URL, a port taken) end with one line on stderr and exit code 2, never a traceback.
``--version`` prints the version; each command's ``--help`` lists its options and the
UCD_GATEWAY_* variables it reads. ``serve`` asks the UCD once at start: if it does not
answer, one warning line says so, and the gateway serves anyway (``/readyz`` is 503 until
the UCD answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette

from gateway.auth.api_keys import keys_file_entry, new_key
from gateway.auth.authenticator import AuthSetupError, anonymous_warning
from gateway.auth.scopes import Scope, parse_scopes
from gateway.drain import EXIT_RESERVE_S, EXIT_WITHIN_S, DrainingServer
from gateway.embedded import EmbeddedUcdError, run_local_ucd
from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.listening import listening_socket, reserved_port
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import ConfigError, LocalUcdConfig
from gateway.logs import configure_logging
from gateway.metrics import process_ended, share_between_processes
from gateway.seed import SeedResult, seed_demo_data, seed_target
from gateway.settings import Settings, reachable_host
from gateway.tuning import event_loop_factory, freeze_after_start_up
from gateway.ucd.deadline import operation_deadline
from gateway.ucd.transport import SERVER_KEEP_ALIVE_S
from gateway.workers import Companion, WorkerFailed, supervise

EXIT_CONFIG = 2
#: Where the local UCD's token comes from, for its banner (the partner it accepts is
#: ``settings.partner`` with ``settings.token``; see ``_local_ucd_config``).
TOKEN_SOURCE = "set by UCD_GATEWAY_TOKEN (not shown)"  # noqa: S105  # a description, not a token
#: Seconds the start-up check of the UCD may take before serve says it does not answer.
STARTUP_CHECK_TIMEOUT = 5.0
#: The settings each command reads besides those of serve, which reads them all.
LOCAL_UCD_VARIABLES = ("partner", "token", "local_ucd_data_dir", "log_level", "log_format")
SEED_VARIABLES = ("partner", "token", "local_ucd_data_dir")

logger = logging.getLogger("gateway.cli")


class ConfigurationError(Exception):
    """A setting or argument the command cannot run with; the message is one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(args)
        if command == "local-ucd":
            return _local_ucd(args)
        if command == "schema":
            return _schema()
        if command == "api-key":
            return _api_key(args)
        return _seed(args)
    except ConfigurationError as exc:
        print(f"ucd-gateway {command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``ucd-gateway serve: ...``), like every
    other start-up error, instead of the usage block and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see --help)\n")


def _variables(names: Sequence[str] | None = None) -> str:
    """The --help epilog: the UCD_GATEWAY_* variables a command reads, with defaults."""
    fields = Settings.model_fields
    if names is None:
        names = list(fields)
    if not names:
        return "environment: no UCD_GATEWAY_* variable applies"
    lines = ["environment (also read from ./.env):"]
    for name in names:
        default = fields[name].default
        shown = "(secret)" if name == "token" else "(none)" if default is None else default
        lines.append(f"  UCD_GATEWAY_{name.upper()}  default: {shown}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="ucd-gateway",
        description="GraphQL gateway in front of Insider's UCD REST API, with a local UCD.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('ucd-gateway')}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    serve = commands.add_parser(
        "serve", help="run the gateway (the default)", epilog=_variables(), formatter_class=raw
    )
    serve.add_argument("--host", help="bind address (default: UCD_GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: UCD_GATEWAY_PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on the port (default 1; more needs UCD_GATEWAY_REDIS_URL)",
    )

    local = commands.add_parser(
        "local-ucd",
        help="run only the local UCD",
        epilog=_variables(LOCAL_UCD_VARIABLES),
        formatter_class=raw,
    )
    local.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    local.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    local.add_argument("--data", type=Path, help="data folder (default: the gateway's)")
    local.add_argument("--strict-limits", action="store_true", help="enforce the UCD's rate limits")

    commands.add_parser("schema", help="print the GraphQL schema (SDL)", epilog=_variables(()))

    seed = commands.add_parser(
        "seed",
        help="load demo users into the local UCD",
        epilog=_variables(SEED_VARIABLES),
        formatter_class=raw,
    )
    seed.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    seed.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    seed.add_argument("--data", type=Path, help="local UCD data folder (default: the gateway's)")
    seed.add_argument("--ucd-url", help="seed a running local UCD at this URL instead")
    seed.add_argument("--no-progress", action="store_true", help="no progress bar")

    api_key = commands.add_parser("api-key", help="manage API keys", epilog=_variables(()))
    api_key_commands = api_key.add_subparsers(dest="api_key_command", metavar="ACTION")
    api_key_commands.required = True
    create = api_key_commands.add_parser(
        "create", help="make a new key and its keys file entry", epilog=_variables(())
    )
    create.add_argument("--id", required=True, help="who will call with it, e.g. crm-sync")
    create.add_argument(
        "--scopes",
        nargs="+",
        required=True,
        metavar="SCOPE",
        help=f"scopes (space- or comma-separated): {', '.join(s.value for s in Scope)}",
    )
    return parser


def _settings(**overrides: object) -> Settings:
    """The settings, with command-line ``overrides`` (validated like the variables)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        # Keyword arguments win over the environment, and are validated the same way.
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "_".join(str(p) for p in first["loc"])
        if field in given:
            name = f"--{field}"
        elif field.upper().startswith("OTEL_"):  # OpenTelemetry's variables keep their names
            name = field.upper()
        else:
            name = f"UCD_GATEWAY_{field.upper()}"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"invalid setting {name}: {message}") from None


# --- serve -------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(host=getattr(args, "host", None), port=getattr(args, "port", None))
    workers: int = getattr(args, "workers", 1)
    _check_workers(settings, workers)
    _configure_logging(settings)
    if workers > 1:
        return _serve_workers(settings, workers)
    sock = _bind(settings.host, settings.port)
    # With port 0 the webhook base URL needs the port actually bound.
    settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    app = _gateway_app(settings, sock)
    _run_gateway(
        app,
        sock,
        settings,
        announce=_printing(
            f"ucd-gateway: GraphiQL on http://{reachable_host(settings.host)}:{settings.port}/graphql"
        ),
    )
    return 0


def _run_gateway(
    app: Starlette,
    sock: socket.socket,
    settings: Settings,
    *,
    announce: Callable[[], None],
    server: uvicorn.Server | None = None,
) -> None:
    """``serve``'s one process, or one worker of ``serve --workers``: ``app`` on ``sock``
    with the draining server (or ``server``, built the same way), the UCD checked once
    started."""
    _run(
        app,
        sock,
        server if server is not None else _draining_server(app, settings),
        start_errors=SERVE_START_ERRORS,
        failed="cannot start",
        started=lambda: _check_ucd(app, settings),
        announce=announce,
    )


#: RuntimeError: the data folder was written by a newer local UCD (the store says so).
SERVE_START_ERRORS: tuple[type[Exception], ...] = (
    EmbeddedUcdError,
    OSError,
    sqlite3.Error,
    RuntimeError,
)


def _check_workers(settings: Settings, workers: int) -> None:
    """``--workers N`` needs what N processes must share (gateway/workers.py)."""
    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    if workers == 1:
        return
    if settings.redis_url is None:
        raise ConfigurationError(
            f"--workers {workers} needs UCD_GATEWAY_REDIS_URL: export jobs, APQ documents, "
            "circuit breakers, rate limits, the UCD quota and the profile cache would be per "
            "process"
        )


def _gateway_app(settings: Settings, sock: socket.socket) -> Starlette:
    from gateway.app import create_app
    from gateway.persisted.manifest import ManifestError

    try:
        app = create_app(settings)
    except (ManifestError, AuthSetupError) as exc:  # a manifest or keys file, a public bind
        sock.close()
        raise ConfigurationError(str(exc)) from None
    warning = anonymous_warning(settings)
    if warning is not None:  # once, also with --workers: the app is built before they fork
        logging.getLogger("gateway.auth").warning(warning)
    return app


def _draining_server(app: Starlette, settings: Settings) -> uvicorn.Server:
    from gateway.app import admission_of

    config = uvicorn.Config(
        app,
        lifespan="off",
        # Its loggers propagate to the one root handler (gateway/logs.py): no line twice.
        log_config=None,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_timeout,
    )
    # SIGTERM drains first (gateway/drain.py); the lifespan closes after it.
    return DrainingServer(config, admission=admission_of(app), drain_timeout=settings.drain_timeout)


def _serve_workers(settings: Settings, workers: int) -> int:
    """N processes on one port (gateway/workers.py); the app is built here, before the
    workers fork, so a bad setting is one line from this process and the schema is built
    once."""
    try:
        reserved = reserved_port(settings.host, settings.port)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    companion: Companion | None = None
    # Every worker's metric files, so any worker's /metrics answers for all of them.
    metrics_files = Path(tempfile.mkdtemp(prefix="ucd-gateway-metrics-"))
    try:
        settings = settings.model_copy(update={"port": reserved.getsockname()[1]})
        if settings.ucd_base_url is None:
            # Once, not per worker; the workers reach it by its URL.
            companion = Companion(_embedded_ucd(settings))
            settings = settings.model_copy(update={"ucd_base_url": companion.message})
        share_between_processes(metrics_files)  # before the app makes its metrics
        app = _gateway_app(settings, reserved)

        def worker(started: Callable[[], None]) -> int:
            try:
                sock = listening_socket(settings.host, settings.port, backlog=2048, reuse_port=True)
                _run_gateway(app, sock, settings, announce=started)
            except ConfigurationError as exc:
                print(f"ucd-gateway serve: {exc}", file=sys.stderr, flush=True)
                return EXIT_CONFIG
            except OSError as exc:
                print(f"ucd-gateway serve: cannot listen: {exc.strerror}", file=sys.stderr)
                return EXIT_CONFIG
            return 0

        url = f"http://{reachable_host(settings.host)}:{settings.port}/graphql"
        supervise(
            workers,
            worker,
            exit_within=EXIT_WITHIN_S,
            on_started=lambda: print(
                f"ucd-gateway: GraphiQL on {url} ({workers} workers)", flush=True
            ),
            on_exit=process_ended,
        )
    except WorkerFailed as exc:
        return exc.code
    finally:
        if companion is not None:  # after the workers: their last writes reach it
            companion.stop(within=EXIT_RESERVE_S)
        reserved.close()
        shutil.rmtree(metrics_files, ignore_errors=True)
    return 0


def _embedded_ucd(settings: Settings) -> Callable[[Callable[[str], None]], int]:
    """The embedded local UCD as the workers' companion process, until SIGTERM."""

    def run(started: Callable[[str], None]) -> int:
        async def serve() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            async with run_local_ucd(settings) as url:
                freeze_after_start_up()
                started(url)
                await stop.wait()

        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(serve())
        except SERVE_START_ERRORS as exc:
            print(f"ucd-gateway serve: cannot start: {exc}", file=sys.stderr, flush=True)
            return EXIT_CONFIG
        return 0

    return run


async def _check_ucd(app: Starlette, settings: Settings) -> None:
    """Ask the UCD once, as /readyz does: "gateway ready" only when it answers, else one
    warning line, and the gateway serves anyway (the UCD may come up later)."""
    runtime = app.state.runtime.get()
    where = f"UCD at {runtime.ucd_base_url} as partner {settings.partner}"
    # The client's own lines about this call (each retry, the final failure) would say
    # the same thing several times: the one warning below sums them up.
    client_logger = logging.getLogger("gateway.ucd")
    level = client_logger.level
    client_logger.setLevel(logging.CRITICAL)
    try:
        with operation_deadline(STARTUP_CHECK_TIMEOUT):
            await runtime.ucd.check_ready()
    except GatewayError as exc:
        logger.warning(
            "the %s does not answer as a UCD (%s); serving anyway, /readyz answers 503 "
            "until it does",
            where,
            exc,
        )
        return
    finally:
        client_logger.setLevel(level)
    logger.info("gateway ready; %s", where)


def _printing(banner: str) -> Callable[[], None]:
    """An ``announce`` for ``_run`` that prints ``banner`` (flushed: tests wait for it)."""
    return functools.partial(print, banner, flush=True)


def _run(
    app: Starlette,
    sock: socket.socket,
    server: uvicorn.Server,
    *,
    start_errors: tuple[type[Exception], ...],
    failed: str,
    announce: Callable[[], None],
    started: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``app`` on ``sock`` with ``server`` until interrupted, then close ``sock``;
    once started (``started`` awaited), ``announce`` it (print the banner, or tell the
    supervisor of ``serve --workers``).

    The app's lifespan runs here rather than in uvicorn (``config`` has it off), so a
    start-up failure of ``start_errors`` (the embedded local UCD's port is taken, a data
    folder cannot be opened) is one line, ``failed: <error>``, not a traceback.
    """

    async def run() -> None:
        lifespan = app.router.lifespan_context(app)
        try:
            await lifespan.__aenter__()
        except start_errors as exc:
            raise ConfigurationError(f"{failed}: {exc}") from None
        try:
            if started is not None:
                await started()
            # Built and started: what lives now lives as long as the process (tuning.py).
            freeze_after_start_up()
            announce()
            await server.serve(sockets=[sock])
        finally:
            await lifespan.__aexit__(None, None, None)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run())
    finally:
        sock.close()


def _configure_logging(settings: Settings) -> None:
    # UCD_GATEWAY_LOG_LEVEL and UCD_GATEWAY_LOG_FORMAT (gateway/logs.py).
    configure_logging(settings.log_level, settings.log_format)


def _bind(host: str, port: int) -> socket.socket:
    """Bind here so a taken port is one clear line, not uvicorn's traceback and exit."""
    try:
        return listening_socket(host, port, backlog=2048)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


# --- local-ucd -----------------------------------------------------------------------------


def _local_ucd_config(
    settings: Settings, *, host: str, port: int, data: Path | None, strict: bool = False
) -> LocalUcdConfig:
    try:
        return LocalUcdConfig(
            host=host,
            port=port,
            data_dir=data if data is not None else settings.local_ucd_data_dir,
            partners={settings.partner: (settings.token.get_secret_value(),)},
            strict_rate_limits=strict,
        ).validated()
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


def _local_ucd(args: argparse.Namespace) -> int:
    settings = _settings()
    # Validate before binding, so a bad --port or --data is reported as such.
    _local_ucd_config(
        settings, host=args.host, port=args.port, data=args.data, strict=args.strict_limits
    )
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    # The real port is needed for the export links the local UCD hands out.
    config = _local_ucd_config(
        settings, host=args.host, port=port, data=args.data, strict=args.strict_limits
    )
    app = create_local_ucd_app(config)
    _configure_logging(settings)
    _run(
        app,
        sock,
        uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="off",
                log_config=None,
                log_level=settings.log_level,
                server_header=False,
                # Clients' idle connections end on their side first (ucd/transport.py).
                timeout_keep_alive=SERVER_KEEP_ALIVE_S,
            )
        ),
        start_errors=(OSError, sqlite3.Error, RuntimeError),
        failed=f"cannot open the data folder {config.data_dir}",
        announce=_printing(
            f"local UCD on {config.base_url}\n"
            f"  partner: {settings.partner}\n"
            # Never the token itself: banners end up in terminals, CI logs and screenshots.
            f"  token:   {TOKEN_SOURCE}\n"
            f"  data:    {config.data_dir}"
        ),
    )
    return 0


# --- schema --------------------------------------------------------------------------------


def _schema() -> int:
    from gateway.api.schema import build_schema

    sys.stdout.write(build_schema().as_str().rstrip("\n") + "\n")
    return 0


# --- api-key -------------------------------------------------------------------------------


def _api_key(args: argparse.Namespace) -> int:
    """Prints the key once (only its digest is kept anywhere) and the entry to add."""
    key_id = args.id.strip()
    if not key_id:
        raise ConfigurationError("--id must not be empty")
    names = [name for value in args.scopes for name in value.replace(",", " ").split()]
    try:
        scopes = parse_scopes(names, where="--scopes")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if not scopes:
        raise ConfigurationError("--scopes must name at least one scope")
    key = new_key()
    print(f"API key for {key_id} (shown once; store it in your secret manager now):")
    print(f"  {key}")
    print("Add this entry to the file UCD_GATEWAY_API_KEYS_FILE names (TOML):")
    print()
    sys.stdout.write(keys_file_entry(key_id, key, scopes))
    return 0


# --- seed ----------------------------------------------------------------------------------


def _seed(args: argparse.Namespace) -> int:
    if args.users < 1:
        raise ConfigurationError("--users must be at least 1")
    settings = _settings()
    target: str | LocalUcdConfig = args.ucd_url or _local_ucd_config(
        settings, host="127.0.0.1", port=0, data=args.data
    )

    async def run() -> SeedResult:
        async with contextlib.AsyncExitStack() as stack:
            try:
                http = await stack.enter_async_context(seed_target(target))
            except (OSError, sqlite3.Error, RuntimeError) as exc:
                # Only a local data folder is opened here; a URL target cannot fail yet.
                raise ConfigurationError(f"cannot open the data folder: {exc}") from None
            return await seed_demo_data(
                http,
                partner=settings.partner,
                token=settings.token,
                users=args.users,
                seed=args.seed,
                progress=not args.no_progress,
            )

    # Every call of the seed goes through UcdClient, which maps httpx's errors to these.
    try:
        result = asyncio.run(run())
    except UpstreamUnavailable as exc:
        print(f"ucd-gateway seed: cannot reach the UCD: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"ucd-gateway seed: the UCD refused the demo data: {exc}", file=sys.stderr)
        return 1
    segments = ", ".join(map(str, result.segment_ids))
    print(f"seeded {result.ok} users ({result.failed} failed); segments {segments}")
    return 0 if result.failed == 0 else 1
