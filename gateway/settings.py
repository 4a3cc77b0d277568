"""The gateway's configuration, read once from the environment and ``.env``.

Every variable is ``UCD_GATEWAY_<FIELD>`` (case-insensitive), e.g.
``UCD_GATEWAY_UCD_BASE_URL=https://unification.useinsider.com``. Nothing else in
the package reads ``os.environ``: the CLI builds one ``Settings()`` at start-up and
tests pass values in (``Settings(partner="acme", _env_file=None)``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: scheme://host[:port]: what a browser sends as Origin (RFC 6454), and nothing else.
_ORIGIN: Final = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
#: count/unit, as UCD_GATEWAY_RATE_LIMIT and a key's rate_limit spell a limit.
_RATE_LIMIT: Final = re.compile(r"^[1-9][0-9]*/(second|minute|hour|day)$")


def _otel(name: str) -> AliasChoices:
    """An OpenTelemetry variable by its own name; ``Settings(otel_...=)`` in code and tests."""
    return AliasChoices(name, name.lower())


#: The values of OTEL_TRACES_EXPORTER the gateway has (gateway/tracing.py).
_TRACES_EXPORTERS = frozenset({"otlp", "console", "none"})


def _exporter_names(value: str) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in value.split(",") if name.strip())


class Settings(BaseSettings):
    """Typed settings; ``token`` is a ``SecretStr`` so it never shows in ``repr`` or logs."""

    model_config = SettingsConfigDict(
        env_prefix="UCD_GATEWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- the UCD --------------------------------------------------------------------
    # None: the embedded local UCD (data under local_ucd_data_dir) is the backend.
    ucd_base_url: str | None = None
    partner: str = "local"
    token: SecretStr = SecretStr("local-dev-token")
    local_ucd_data_dir: Path = Path(".local-ucd")
    # Port of the sibling local UCD server in `serve` mode; 0 picks a free port.
    local_ucd_port: int = Field(default=8765, ge=0, le=65535)

    # --- the UCD client -------------------------------------------------------------
    connect_timeout: float = Field(default=3.0, gt=0)
    request_timeout: float = Field(default=15.0, gt=0)
    # Deprecated: the reads pool's default (UCD_GATEWAY_MAX_CONCURRENCY_READS).
    max_concurrency: int = Field(default=16, ge=1)
    # Bulkheads (gateway/ucd/bulkheads.py): one pool per kind of call, so hung reads never
    # delay a write. None: max_concurrency.
    max_concurrency_reads: int | None = Field(default=None, ge=1)
    max_concurrency_writes: int = Field(default=8, ge=1)
    max_concurrency_identity: int = Field(default=4, ge=1)
    max_concurrency_exports: int = Field(default=2, ge=1)
    # Circuit breaker per UCD endpoint (gateway/ucd/breaker.py): open after this many
    # consecutive failures, probe again after the cool-down (seconds).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=64, ge=1)
    max_retries: int = Field(default=2, ge=0)
    # Longest Retry-After we are willing to sleep inside one GraphQL request.
    max_retry_after: float = Field(default=5.0, ge=0)
    # All UCD work of one GraphQL operation (attempts, backoff, Retry-After waits) ends
    # within this many seconds: a caller hears UPSTREAM_UNAVAILABLE rather than hang.
    operation_timeout: float = Field(default=10.0, gt=0)
    # Group commit (gateway/upserts.py): a lone single-user write goes at once; this is an
    # optional linger before an idle lane's call, for fewer, bigger calls. 0: none.
    upsert_window_ms: float = Field(default=0.0, ge=0)
    # "lean": the gateway's own keep-alive pool (gateway/ucd/lean.py), written on directly
    # by UcdClient (bench/ucd_client.py); "aiohttp": httpx's API over aiohttp's pool;
    # "httpx": httpx's own transport.
    http_transport: Literal["lean", "aiohttp", "httpx"] = "lean"

    # --- the HTTP server ------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Base URL the UCD calls back (export webhooks); default http://host:port.
    public_url: str | None = None

    # --- request limits (on by default) --------------------------------------------
    # The UCD itself accepts 5,000,000-byte bodies; a GraphQL upsert of 1,000 users is
    # about the same size, so the gateway allows the same.
    max_body_bytes: int = Field(default=5_000_000, ge=1)
    # The contract's deepest useful selection is 4 levels (mutation payload -> user ->
    # events -> field); 10 leaves room for fragments without allowing abuse.
    max_query_depth: int = Field(default=10, ge=1)
    max_aliases: int = Field(default=50, ge=1)
    # 5,000: graphql-core parses ~4-5 µs a token here, so a document just under the limit
    # is parsed in ~20 ms; at 10,000 it took 47-64 ms, past the 50 ms any document may
    # cost (bench/document_limits.py). GraphiQL's introspection query is ~300 tokens.
    max_tokens: int = Field(default=5_000, ge=1)
    # Fields selected after fragment expansion: a fragment spread twice per level selects
    # 2**levels fields from a few hundred bytes (gateway/document_limits.py).
    max_fields: int = Field(default=1_000, ge=1)
    max_directives: int = Field(default=50, ge=1)
    # users(keys) costs one profile call per distinct user, and the UCD's profile quota is
    # 1,000 units a minute (§2.6): one request must not be able to spend it all.
    max_user_keys: int = Field(default=100, ge=1)
    # The UCD calls one operation may plan (gateway/api/budget.py): 50 aliases of
    # users(keys) would otherwise be 5,000 profile calls from a single request.
    max_ucd_calls_per_operation: int = Field(default=100, ge=1)

    # --- load shedding and drain (gateway/load_shedding.py) -------------------------
    # GraphQL requests in flight in this process; beyond it an immediate 503 OVERLOADED,
    # before the body is read: a queue of requests that would all time out helps nobody.
    max_in_flight: int = Field(default=256, ge=1)
    # Also refused, while requests are in flight: new GraphQL requests whenever the event
    # loop runs more than this many ms behind (gateway/loop_lag.py), since a request
    # waits unread in its socket for as long, refusal or not. 0: off.
    max_loop_lag_ms: float = Field(default=50.0, ge=0)
    # The in-flight limit drops below max_in_flight while the event loop runs later than
    # this (ms) with requests in flight, and climbs back while it is on time
    # (gateway/in_flight_limit.py): 256 admitted operations resuming together make one
    # turn of the loop ~100 ms, which every new request waits for. 0: the limit is fixed.
    target_loop_lag_ms: float = Field(default=10.0, ge=0)
    # Seconds an idle client connection stays open (uvicorn's default is 5). A server that
    # closes first races the next request a client writes on the connection, which then
    # fails with a reset (the bench's overload run saw it); load balancers keep idle
    # connections up to 60 s (AWS ALB), so the gateway keeps them longer.
    keep_alive_timeout: int = Field(default=75, ge=1)
    # After SIGTERM, how long operations in flight may take to finish before the server
    # stops; at most 10 so the process is gone within 15 s (uvicorn's 1 s and close after).
    drain_timeout: float = Field(default=10.0, ge=0, le=10)

    # --- schema exposure ------------------------------------------------------------
    # Off: __schema and __type are refused and no error suggests a field name ("Did you
    # mean ...?"), so the schema is not readable from outside; __typename still works.
    introspection: bool = True
    # Off: GET /graphql from a browser is 404 instead of the GraphiQL page (gateway/graphiql/),
    # and so are the page's files under /graphiql/static/.
    graphiql: bool = True

    # --- shared state (gateway/state/) ----------------------------------------------
    # Redis or Valkey shared by every replica (redis://[:password@]host:port/db); None:
    # state in this process, export jobs also in <local_ucd_data_dir>/gateway-state.sqlite3.
    redis_url: SecretStr | None = None
    # Seconds for a connect, a command, and a whole state operation: a Redis outage is
    # STATE_UNAVAILABLE this fast (or at the operation's deadline, if sooner).
    redis_timeout: float = Field(default=1.0, gt=0)
    redis_max_connections: int = Field(default=32, ge=1)
    # An export job is kept this many seconds after its last change (the link it carries
    # is valid for 24 hours; a day more shows it as EXPIRED rather than unknown).
    export_job_ttl: float = Field(default=172_800, gt=0)

    # --- the partner's catalogue (Query.catalog, gateway/catalog.py) -----------------
    # Seconds an E10 answer (attributes, events) is kept, per partner and table, in this
    # process; 0: every catalog query asks the UCD.
    catalog_ttl: float = Field(default=60.0, ge=0)

    # --- the profile cache (gateway/reads/cache.py) --------------------------------------
    # Seconds a profile read is kept, per user and per attribute / event window, in the
    # shared state (Redis when UCD_GATEWAY_REDIS_URL is set); unset: no cache, every read
    # asks the UCD. Writes made to the UCD by other systems show after at most this long.
    profile_cache_ttl: float | None = Field(default=None, gt=0)
    # The key of the HMAC that names identifiers (email, phone...) in the cache's keys,
    # so no key spells one out; unset: the partner's token. Every replica needs the same.
    profile_cache_secret: SecretStr | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so `serve` says so in one line; the message never repeats the URL,
        # which may carry a password.
        schemes = ("redis://", "rediss://", "unix://")  # redis-py's: TCP, TLS, Unix socket
        if value is not None and not value.get_secret_value().startswith(schemes):
            raise ValueError("must start with " + ", ".join(schemes))
        return value

    # --- logs (gateway/logs.py) -----------------------------------------------------
    # The root level of every logger the gateway and uvicorn use; httpx stays at WARNING.
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # "json": one object per line (time, level, logger, message, request_id, operation,
    # operation_type, duration_ms, outcome), for log shippers; "text" for terminals.
    log_format: Literal["text", "json"] = "text"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        # UCD_GATEWAY_LOG_LEVEL=INFO is as good as info.
        return value.lower() if isinstance(value, str) else value

    @field_validator("ucd_base_url")
    @classmethod
    def _an_http_url(cls, value: str | None) -> str | None:
        # Refused at start-up in one line, rather than on the first request.
        if value is not None:
            check_http_url(value)
        return value

    # --- persisted documents and batching (gateway/persisted/, gateway/graphql_over_http.py)
    # A manifest of trusted documents: Apollo's persisted-query manifest JSON or GraphQL
    # Codegen's client-preset map {hash: document}; served by their id or hash.
    trusted_documents: Path | None = None
    # True: only the manifest's documents run; any other document (a query text, an APQ
    # registration, an unknown hash) is refused before any UCD call.
    trusted_documents_only: bool = False
    # Characters of APQ-registered documents kept in memory (least recently used go
    # first). Each one is also within the document limits above (at most
    # max_tokens × 16 characters), so registration cannot store huge texts.
    persisted_store_chars: int = Field(default=10_000_000, ge=0)
    # Cache-Control of a GET answered from a persisted document (a query, no errors):
    # "private" because answers carry personal data that no shared cache should keep.
    persisted_cache_control: str = "private, max-age=60"
    # Operations in one JSON array; a longer batch is refused with 400 before any runs.
    max_batch: int = Field(default=10, ge=1)

    # --- compiled execution (gateway/compiled/) ---
    # Queries made only of user/users with typed attribute and event fields are answered
    # by a plan cached per document, straight from the UCD's answer; false: every
    # operation runs through graphql-core (the same bytes, more CPU).
    compiled_execution: bool = True

    @field_validator("trusted_documents_only")
    @classmethod
    def _trusted_only_needs_a_manifest(cls, only: bool, info: ValidationInfo) -> bool:
        if only and info.data.get("trusted_documents") is None:
            raise ValueError(
                "true needs UCD_GATEWAY_TRUSTED_DOCUMENTS (the manifest of the documents to allow)"
            )
        return only

    # --- callers: authentication and scopes (gateway/auth/) ---------------------------
    # API keys: a TOML or JSON file of {id, sha256, scopes, rate_limit?} (README, Production).
    api_keys_file: Path | None = None
    # JWTs (RS256, ES256, EdDSA) verified against this JWK Set, with these iss and aud.
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # The key set is fetched again once this old; on an unknown kid at once, but never
    # twice within jwt_jwks_min_refresh (a flood of made-up kids is not a flood of fetches).
    jwt_jwks_max_age: float = Field(default=300.0, gt=0)
    jwt_jwks_min_refresh: float = Field(default=30.0, ge=0)
    # Clock skew allowed on exp and nbf, seconds.
    jwt_leeway: float = Field(default=30.0, ge=0)
    # Without keys or a JWKS the gateway serves anyone: on a loopback address only, unless
    # this is true (gateway/auth/authenticator.py).
    allow_anonymous: bool = False
    # Custom attributes (names without c_) whose values are personal data: reading them
    # needs pii:read, like email or phoneNumber. A comma list: "loyalty_card,home_address".
    pii_attributes: Annotated[tuple[str, ...], NoDecode] = ()

    # --- browsers (gateway/cors.py) ------------------------------------------------
    # Exact origins (scheme://host[:port]) whose pages may call the gateway, comma-separated;
    # none by default, so no other site's page can read an answer.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # --- audit trail and rate limits (gateway/audit.py, gateway/rate_limits.py) --------
    # Where the audit trail goes: a file (appended, fsync'ed per write) or "-" for stderr;
    # unset: no audit trail. Mutations refuse to run when their line cannot be written.
    audit_log: str | None = None
    # Key of the HMAC that stands for a user named by email, phone, uuid or custom
    # identifier in an audit line (never the value itself); unset: the UCD token.
    audit_hash_key: SecretStr | None = None
    # Every principal's budget of planned UCD calls (at least 1 an operation) per window,
    # e.g. 600/minute (second, minute, hour, day); a key's rate_limit overrides it.
    rate_limit: str | None = None
    # The share of the partner's UCD limits (§1.1) every replica together may spend,
    # counted through the shared state (gateway/partner_quota.py); 0: no budget kept, the
    # UCD's own 429s the only limit (the default: the embedded local UCD enforces none).
    ucd_quota_share: float = Field(0.0, ge=0.0, le=1.0)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_shape(cls, value: str | None) -> str | None:
        if value is not None and not _RATE_LIMIT.match(value):
            raise ValueError("must look like 600/minute (count per second, minute, hour or day)")
        return value

    @field_validator("pii_attributes", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an exact origin like https://app.example.com "
                    "(no path, no wildcard)"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _closed_schema_with_authentication(cls, data: Any) -> Any:
        """With callers authenticated, introspection and GraphiQL default to off: who may
        not read a field should not be handed a map of all of them. Set explicitly, they
        stay as set."""
        if isinstance(data, dict) and (data.get("api_keys_file") or data.get("jwt_jwks_url")):
            data.setdefault("introspection", False)
            data.setdefault("graphiql", False)
        return data

    def authentication_configured(self) -> bool:
        """True when callers must show an API key or a JWT."""
        return self.api_keys_file is not None or self.jwt_jwks_url is not None

    # --- tracing (gateway/tracing.py) ----------------------------------------------
    # OpenTelemetry's standard variables, spelled as its specification spells them (no
    # UCD_GATEWAY_ prefix), so a deployment's usual OTel set-up applies. Tracing is on
    # when OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP/protobuf to <endpoint>/v1/traces)
    # or OTEL_TRACES_EXPORTER (otlp, console, none; comma-separated) is set.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=_otel("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    # The traces URL itself (used as it is, no /v1/traces added), as OTel specifies.
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias=_otel("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    otel_traces_exporter: str | None = Field(
        default=None, validation_alias=_otel("OTEL_TRACES_EXPORTER")
    )
    otel_service_name: str = Field(
        default="ucd-gateway", validation_alias=_otel("OTEL_SERVICE_NAME")
    )
    otel_sdk_disabled: bool = Field(default=False, validation_alias=_otel("OTEL_SDK_DISABLED"))

    @field_validator("otel_traces_exporter")
    @classmethod
    def _known_exporters(cls, value: str | None) -> str | None:
        if value is not None:
            unknown = sorted(set(_exporter_names(value)) - _TRACES_EXPORTERS)
            if unknown:
                raise ValueError(
                    f"unknown exporter {', '.join(unknown)}; "
                    f"the gateway has {', '.join(sorted(_TRACES_EXPORTERS))}"
                )
        return value

    def traces_exporters(self) -> tuple[str, ...]:
        """Where spans go: () when tracing is off. ``none`` turns it off even with an
        endpoint set, as OpenTelemetry specifies; an endpoint alone means ``otlp``."""
        if self.otel_sdk_disabled:
            return ()
        if self.otel_traces_exporter is not None:
            names = _exporter_names(self.otel_traces_exporter)
            return () if "none" in names else names
        if self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint:
            return ("otlp",)
        return ()

    def otlp_traces_url(self) -> str:
        """The OTLP/HTTP traces URL: the traces endpoint as it is, else the endpoint with
        ``/v1/traces``, else OpenTelemetry's default (a collector on this host)."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint or "http://localhost:4318"
        return base.rstrip("/") + "/v1/traces"

    # --- replicas: what more they share through Redis (gateway/persisted/shared.py,
    # gateway/shared_breakers.py) ----------------------------------------------------
    # Seconds an APQ-registered document is kept in Redis after its last registration
    # (each text is within the document limits); without Redis documents stay in memory.
    persisted_ttl: float = Field(default=86_400, gt=0)
    # Seconds a replica trusts its mirror of a closed circuit without failures before it
    # reads the shared state again (an open circuit is refused from the mirror at once).
    breaker_refresh: float = Field(default=0.5, gt=0)

    def webhook_base_url(self) -> str:
        """The base URL the UCD should POST export webhooks to (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{reachable_host(self.host)}:{self.port}"


def reachable_host(host: str) -> str:
    """``host`` as a client on this machine reaches it, ready for a URL.

    0.0.0.0 and :: are bind addresses, not ones a client can call; an IPv6 address needs
    brackets in a URL.

    >>> reachable_host("0.0.0.0"), reachable_host("::1"), reachable_host("10.1.2.3")
    ('127.0.0.1', '[::1]', '10.1.2.3')
    """
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def check_http_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an absolute http(s) URL with a host and a
    valid port, and nothing after the path.

    >>> check_http_url("https://unification.useinsider.com")
    >>> check_http_url("unification.useinsider.com")
    Traceback (most recent call last):
    ...
    ValueError: must be an http(s) URL such as https://unification.useinsider.com
    """
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or parts.query
        or parts.fragment
    ):
        raise ValueError("must be an http(s) URL such as https://unification.useinsider.com")
