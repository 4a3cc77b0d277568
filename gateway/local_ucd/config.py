"""Configuration of the local UCD (REST contract §5.1; the setting names are normative).

Built once by the embedding application (the gateway's app, the CLI, tests) and passed in;
nothing in the local UCD reads the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FAULT_KEYS",
    "PARTNER_NAME_RE",
    "ConfigError",
    "EndpointFaults",
    "FaultConfig",
    "LocalUcdConfig",
]

#: The endpoint keys of fault injection (§5.7), one per Insider endpoint of §3.
FAULT_KEYS: tuple[str, ...] = (
    "upsert",
    "profile",
    "export",
    "attribute_delete",
    "identity_update",
    "identity_delete",
    "anonymize_contact",
    "anonymize_user",
    "delete_user",
    "metadata_columns",
)

#: A partner name (§2.2): what authentication accepts and what the settings may name.
PARTNER_NAME_RE = re.compile(r"^[a-z0-9_-]{1,64}$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting."""


@dataclass(frozen=True)
class EndpointFaults:
    """Fault rates of one endpoint key (§5.7). Rates are consecutive bands in [0, 1)."""

    latency_ms: float = 0.0
    error_500_rate: float = 0.0
    error_429_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    retry_after_s: int = 1

    @classmethod
    def from_json(cls, key: str, obj: Any) -> EndpointFaults:
        where = f"faults.endpoints.{key}"
        if not isinstance(obj, Mapping):
            raise ConfigError(f"{where} must be an object")
        unknown = sorted(set(obj) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{where} has unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, raw in obj.items():
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                raise ConfigError(f"{where}.{name} must be a number")
            if raw < 0:
                raise ConfigError(f"{where}.{name} must not be negative")
            if name.endswith("_rate") and raw > 1:
                raise ConfigError(f"{where}.{name} must be between 0 and 1")
            if name == "retry_after_s":
                if raw != int(raw) or raw < 1:
                    raise ConfigError(
                        f"{where}.retry_after_s must be a whole number of seconds >= 1"
                    )
                raw = int(raw)
            values[name] = raw
        faults = cls(**values)
        if faults.total_rate > 1 + 1e-9:
            raise ConfigError(f"{where}: the rates must sum to at most 1")
        return faults

    @property
    def total_rate(self) -> float:
        return (
            self.error_500_rate + self.error_429_rate + self.drop_rate + self.drop_after_commit_rate
        )


@dataclass(frozen=True)
class FaultConfig:
    """Fault injection (§5.7): a seed and per-endpoint-key fault rates; ``*`` is the fallback."""

    seed: int | str | None = None
    endpoints: Mapping[str, EndpointFaults] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> FaultConfig:
        if not isinstance(obj, Mapping):
            raise ConfigError("faults must be an object")
        seed = obj.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
            raise ConfigError("faults.seed must be an integer, a string or null")
        endpoints_raw = obj.get("endpoints", {})
        if not isinstance(endpoints_raw, Mapping):
            raise ConfigError("faults.endpoints must be an object")
        endpoints: dict[str, EndpointFaults] = {}
        for key, value in endpoints_raw.items():
            if key != "*" and key not in FAULT_KEYS:
                raise ConfigError(
                    f"faults.endpoints has an unknown key {key!r}; "
                    f"known keys: {', '.join(FAULT_KEYS)} and *"
                )
            endpoints[key] = EndpointFaults.from_json(key, value)
        return cls(seed=seed, endpoints=endpoints)

    def for_key(self, key: str) -> EndpointFaults:
        """The faults of one endpoint key: its own entry, else ``*``, else none."""
        return self.endpoints.get(key) or self.endpoints.get("*") or EndpointFaults()


def _default_partners() -> dict[str, tuple[str, ...]]:
    return {"local": ("local-dev-token",)}


@dataclass(frozen=True)
class LocalUcdConfig:
    """Every setting of §5.1. Construct with keyword arguments; call :meth:`validated`."""

    host: str = "127.0.0.1"
    port: int = 8765
    public_base_url: str | None = None
    data_dir: Path = Path(".local-ucd")
    partners: Mapping[str, tuple[str, ...]] = field(default_factory=_default_partners)
    strict_rate_limits: bool = False
    event_retention_days: Mapping[str, int] = field(default_factory=dict)
    faults: FaultConfig | None = None

    def __repr__(self) -> str:
        # Tokens are secrets: never in a repr, a log line or an error.
        return (
            f"LocalUcdConfig(host={self.host!r}, port={self.port!r}, "
            f"public_base_url={self.public_base_url!r}, data_dir={str(self.data_dir)!r}, "
            f"partners={sorted(self.partners)!r}, strict_rate_limits={self.strict_rate_limits!r})"
        )

    @property
    def base_url(self) -> str:
        """Base of export links (§5.4): ``public_base_url`` or ``http://<host>:<port>``."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "ucd.sqlite3"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    def validated(self) -> LocalUcdConfig:
        """Check every setting; raise :class:`ConfigError` with a clear message."""
        if (
            not isinstance(self.port, int)
            or isinstance(self.port, bool)
            or not 0 <= self.port <= 65535
        ):
            raise ConfigError(f"port must be a whole number from 0 to 65535, not {self.port!r}")
        if not self.host:
            raise ConfigError("host must not be empty")
        if self.public_base_url is not None and not re.match(r"^https?://", self.public_base_url):
            raise ConfigError("public_base_url must start with http:// or https://")
        if not self.partners:
            raise ConfigError("partners must name at least one partner")
        for partner, tokens in self.partners.items():
            if not PARTNER_NAME_RE.match(partner):
                raise ConfigError(
                    f"partner name {partner!r} is invalid: use 1 to 64 of a-z, 0-9, _ and -"
                )
            if (
                isinstance(tokens, str)
                or not tokens
                or not all(isinstance(t, str) and t.strip() for t in tokens)
            ):
                raise ConfigError(f"partner {partner!r} needs a list of non-empty tokens")
        for name, days in self.event_retention_days.items():
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                raise ConfigError(f"event_retention_days.{name} must be a whole number of days")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigError(f"data_dir {str(self.data_dir)!r} exists and is not a folder")
        return self
