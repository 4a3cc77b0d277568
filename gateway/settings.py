"""The gateway's configuration, read once from the environment and ``.env``.

Every variable is ``UCD_GATEWAY_<FIELD>`` (case-insensitive), e.g.
``UCD_GATEWAY_UCD_BASE_URL=https://unification.useinsider.com``. Nothing else in
the package reads ``os.environ``: the CLI builds one ``Settings()`` at start-up and
tests pass values in (``Settings(partner="acme", _env_file=None)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # "aiohttp": httpx's API over aiohttp's connection pool, ~2.4x the throughput of
    # httpx's own transport here (docs/perf-notes.md); "httpx" keeps httpx's default.
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"

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

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so `serve` says so in one line; the message never repeats the URL,
        # which may carry a password.
        schemes = ("redis://", "rediss://", "unix://")  # redis-py's: TCP, TLS, Unix socket
        if value is not None and not value.get_secret_value().startswith(schemes):
            raise ValueError("must start with " + ", ".join(schemes))
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

    @field_validator("trusted_documents_only")
    @classmethod
    def _trusted_only_needs_a_manifest(cls, only: bool, info: ValidationInfo) -> bool:
        if only and info.data.get("trusted_documents") is None:
            raise ValueError(
                "true needs UCD_GATEWAY_TRUSTED_DOCUMENTS (the manifest of the documents to allow)"
            )
        return only

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
