"""A real JWKS endpoint: issuers whose key sets are served over HTTP by uvicorn.

One server per test session (a Starlette app in a thread, on a free loopback port);
each test gets an ``Issuer`` of its own at ``/<name>/jwks.json``, so rotating one
test's keys never disturbs another's. The issuer signs tokens with PyJWT and counts the
fetches of its key set, so tests can assert that refreshes are bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.gateway.threaded_server import loopback_socket, serving_in_thread, url_of

ISSUER: Final = "https://id.example.test/"
AUDIENCE: Final = "ucd-gateway"

_kids = itertools.count(1)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: Any
    jwk: Mapping[str, Any]


def new_key(alg: str = "RS256") -> SigningKey:
    """A fresh key pair for ``alg`` (RS256, ES256 or EdDSA) and its public JWK."""
    kid = f"key-{next(_kids)}"
    private: Any
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, alg, private, {**jwk, "kid": kid, "alg": alg, "use": "sig"})


@dataclass
class Issuer:
    """One identity provider: the keys it publishes and the tokens it signs."""

    name: str
    base_url: str
    published: list[SigningKey] = field(default_factory=list)
    fetches: int = 0
    #: Entries served after the published keys' (keys of other kinds, broken ones).
    extra: list[Any] = field(default_factory=list)
    #: Served instead of a key set when set (an issuer that answers nonsense).
    raw: Any = None

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/{self.name}/jwks.json"

    @property
    def key(self) -> SigningKey:
        """The newest published key."""
        return self.published[-1]

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """Publish a new key in place of the old ones (tokens of those stop verifying)."""
        key = new_key(alg)
        self.published = [key]
        return key

    def token(
        self,
        scopes: str | list[str] | None = "profile:read",
        *,
        key: SigningKey | None = None,
        claim: str = "scope",
        expires_in: float = 300,
        with_kid: bool = True,
        drop: tuple[str, ...] | list[str] = (),
        **claims: Any,
    ) -> str:
        """A token signed with ``key`` (default: the newest published one)."""
        key = key or self.key
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "svc-reporting",
            "iat": now,
            "exp": now + int(expires_in),
        }
        if scopes is not None:
            payload[claim] = scopes
        payload.update(claims)
        for name in drop:
            payload.pop(name, None)
        headers = {"kid": key.kid} if with_kid else {}
        return jwt.encode(payload, key.private, algorithm=key.alg, headers=headers)

    def document(self) -> Any:
        self.fetches += 1
        if self.raw is not None:
            return self.raw
        return {"keys": [dict(k.jwk) for k in self.published] + self.extra}


class JwksServer:
    """The issuers' key sets over HTTP; ``issuer()`` adds one with one RS256 key."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.issuers: dict[str, Issuer] = {}
        self._names = itertools.count(1)

    def issuer(self) -> Issuer:
        issuer = Issuer(f"issuer-{next(self._names)}", self.base_url)
        issuer.rotate()
        self.issuers[issuer.name] = issuer
        return issuer

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            issuer = self.issuers.get(request.path_params["name"])
            if issuer is None:
                return JSONResponse({"error": "no such issuer"}, status_code=404)
            return JSONResponse(issuer.document())

        return Starlette(routes=[Route("/{name}/jwks.json", jwks)])


@contextlib.contextmanager
def serve_jwks() -> Iterator[JwksServer]:
    """The server, running in a thread on a free loopback port until the block ends."""
    sock = loopback_socket()
    server_state = JwksServer(url_of(sock))
    config = uvicorn.Config(server_state.app(), log_level="warning", lifespan="off")
    with serving_in_thread(config, sock, "the JWKS server"):
        yield server_state
