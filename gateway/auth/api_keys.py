"""API keys: the keys file, constant-time lookup, and new keys for the command line.

The file (``UCD_GATEWAY_API_KEYS_FILE``) holds no key, only its SHA-256, so a leaked
file or backup lets nobody in. TOML (``.toml``) or JSON (``.json``), one entry per key::

    [[keys]]
    id = "crm-sync"                      # who calls: the principal's id
    sha256 = "9f86d0...0a08"             # hex SHA-256 of the key
    scopes = ["profile:read", "profile:write"]
    rate_limit = "600/minute"            # optional; this key's own limit

    {"keys": [{"id": "crm-sync", "sha256": "9f86d0...", "scopes": ["profile:read"]}]}

A presented key is hashed and compared with every entry by ``hmac.compare_digest``, all
of them, found or not: neither the comparison nor the loop tells an attacker how close
a guess was. Keys are 256 random bits, so one unsalted SHA-256 is enough (nothing to
brute-force, unlike a password). A key never appears in a log line or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.auth.scopes import Scope, parse_scopes

__all__ = [
    "KEY_PREFIX",
    "ApiKey",
    "ApiKeys",
    "KeysFileError",
    "keys_file_entry",
    "new_key",
    "sha256_hex",
]

#: Makes a key recognisable in a secret scanner or a support ticket; part of the key.
KEY_PREFIX: Final = "ucdg_"

#: ``count/unit`` as the gateway's rate limit setting spells it.
_RATE_LIMIT: Final = re.compile(r"^[1-9][0-9]*/(second|minute|hour|day)$")
_HEX_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")


class KeysFileError(Exception):
    """The keys file cannot be used; the message is one line naming the file and entry."""


@dataclass(frozen=True)
class ApiKey:
    """One entry of the keys file (``digest``: the key's SHA-256, 32 bytes)."""

    id: str
    digest: bytes
    scopes: frozenset[Scope]
    rate_limit: str | None = None


class ApiKeys:
    """The keys of the file, looked up by the key itself."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeysFileError(f"cannot read the API keys file {path}: {exc.strerror}") from None
        try:
            if path.suffix == ".json":
                document: Any = json.loads(text)
            else:
                document = tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            kind = "JSON" if path.suffix == ".json" else "TOML"
            raise KeysFileError(f"{path} is not valid {kind}: {exc}") from None
        return cls(_entries(document, str(path)))

    def find(self, credential: str) -> ApiKey | None:
        """The entry of ``credential``, or None; every entry is compared (see module doc)."""
        digest = hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


def _entries(document: Any, where: str) -> list[ApiKey]:
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeysFileError(f"{where}: expected a list named keys ([[keys]] in TOML)")
    keys: list[ApiKey] = []
    ids: set[str] = set()
    digests: set[bytes] = set()
    for index, entry in enumerate(document["keys"]):
        at = f"{where}: keys[{index}]"
        if not isinstance(entry, Mapping):
            raise KeysFileError(f"{at} must be a table with id, sha256 and scopes")
        key = _entry(entry, at)
        if key.id in ids:
            raise KeysFileError(f"{at}.id {key.id!r} is used twice")
        if key.digest in digests:
            raise KeysFileError(f"{at}.sha256 is the digest of another entry too")
        ids.add(key.id)
        digests.add(key.digest)
        keys.append(key)
    return keys


def _entry(entry: Mapping[str, Any], at: str) -> ApiKey:
    unknown = sorted(set(entry) - {"id", "sha256", "scopes", "rate_limit"})
    if unknown:
        raise KeysFileError(f"{at} has unknown fields: {', '.join(unknown)}")
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not key_id.strip():
        raise KeysFileError(f"{at}.id must be a non-empty string")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _HEX_DIGEST.match(digest.lower()):
        raise KeysFileError(f"{at}.sha256 must be 64 hex digits (the key's SHA-256)")
    scopes = entry.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise KeysFileError(f"{at}.scopes must be a list of scope names")
    try:
        parsed = parse_scopes(scopes, where=f"{at}.scopes")
    except ValueError as exc:
        raise KeysFileError(str(exc)) from None
    rate_limit = entry.get("rate_limit")
    if rate_limit is not None and (
        not isinstance(rate_limit, str) or not _RATE_LIMIT.match(rate_limit)
    ):
        raise KeysFileError(f"{at}.rate_limit must look like 600/minute (second, hour, day)")
    return ApiKey(key_id, bytes.fromhex(digest), parsed, rate_limit)


def new_key() -> str:
    """A fresh key: the prefix and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def keys_file_entry(key_id: str, key: str, scopes: Iterable[Scope]) -> str:
    """The TOML entry of ``key`` for the keys file (its digest, never the key)."""
    names = ", ".join(json.dumps(s.value) for s in sorted(scopes))
    return (
        f"[[keys]]\nid = {json.dumps(key_id)}\n"
        f"sha256 = {json.dumps(sha256_hex(key))}\nscopes = [{names}]\n"
    )
