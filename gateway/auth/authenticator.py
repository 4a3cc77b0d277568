"""From an ``Authorization`` header to a ``Principal``, and the safe defaults at start-up.

``build_authenticator(settings)`` is called once by ``create_app``. It loads the keys
file, sets up the JWT key set, and refuses to build a gateway that would serve anyone
on an address other than loopback (``AuthSetupError``, one line for the command line):

* keys file and/or JWKS configured: every GraphQL request needs ``Bearer <credential>``;
* neither, bound to 127.0.0.1, ::1 or localhost: anyone may call, with every scope (the
  ``make run`` case), and ``serve`` logs one warning line (``anonymous_warning``);
* neither, any other address: refused, unless ``UCD_GATEWAY_ALLOW_ANONYMOUS=true``
  (then the same warning).

A credential with two dots is a JWT (when a key set is configured); anything else is
looked up as an API key. Generated keys contain no dot, so the two never collide.
"""

from __future__ import annotations

import ipaddress

import httpx

from gateway.auth.api_keys import ApiKeys, KeysFileError
from gateway.auth.jwt_tokens import JwtVerifier, KeySet, TokenRefused
from gateway.auth.principal import ANONYMOUS, Principal, PrincipalKind
from gateway.settings import Settings

__all__ = [
    "AuthSetupError",
    "Authenticator",
    "Refused",
    "anonymous_warning",
    "build_authenticator",
    "is_loopback",
]


class AuthSetupError(Exception):
    """Authentication is configured wrongly, or missing where it must not be; one line."""


class Refused(Exception):
    """The request's credential is missing or not accepted; the message is safe to show.

    ``presented``: a credential was sent (then the 401 says ``error="invalid_token"``).
    """

    def __init__(self, message: str, *, presented: bool) -> None:
        super().__init__(message)
        self.presented = presented


class Authenticator:
    """The credentials the gateway accepts; with neither keys nor tokens, everyone."""

    def __init__(self, *, api_keys: ApiKeys | None = None, jwt: JwtVerifier | None = None) -> None:
        self.api_keys = api_keys
        self.jwt = jwt

    @property
    def enabled(self) -> bool:
        return self.api_keys is not None or self.jwt is not None

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller ``authorization`` (the header's value) proves, or ``Refused``."""
        if not self.enabled:
            return ANONYMOUS
        if authorization is None:
            raise Refused(
                "this gateway needs Authorization: Bearer <API key or JWT>", presented=False
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Refused(
                "the Authorization header must be Bearer <API key or JWT>", presented=False
            )
        if self.jwt is not None and credential.count(".") == 2:
            try:
                return await self.jwt.principal(credential)
            except TokenRefused as exc:
                raise Refused(str(exc), presented=True) from None
        key = self.api_keys.find(credential) if self.api_keys is not None else None
        if key is None:
            raise Refused("the credential is not a known API key or a valid JWT", presented=True)
        return Principal(key.id, PrincipalKind.API_KEY, key.scopes, key.rate_limit)

    async def aclose(self) -> None:
        if self.jwt is not None:
            await self.jwt.keys.aclose()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def build_authenticator(
    settings: Settings, *, http: httpx.AsyncClient | None = None
) -> Authenticator:
    """The authenticator ``settings`` ask for; ``http`` fetches the JWT key set (else its own)."""
    api_keys = None
    if settings.api_keys_file is not None:
        try:
            api_keys = ApiKeys.load(settings.api_keys_file)
        except KeysFileError as exc:
            raise AuthSetupError(str(exc)) from None
    verifier = None
    if settings.jwt_jwks_url is not None:
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise AuthSetupError(
                "UCD_GATEWAY_JWT_JWKS_URL needs UCD_GATEWAY_JWT_ISSUER and "
                "UCD_GATEWAY_JWT_AUDIENCE: a token from any issuer, for any service, "
                "must not be accepted"
            )
        keys = KeySet(
            settings.jwt_jwks_url,
            max_age=settings.jwt_jwks_max_age,
            min_refresh=settings.jwt_jwks_min_refresh,
            http=http,
        )
        verifier = JwtVerifier(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway,
        )
    authenticator = Authenticator(api_keys=api_keys, jwt=verifier)
    if (
        not authenticator.enabled
        and not is_loopback(settings.host)
        and not settings.allow_anonymous
    ):
        raise AuthSetupError(
            f"refusing to serve without authentication on {settings.host}: set "
            "UCD_GATEWAY_API_KEYS_FILE or UCD_GATEWAY_JWT_JWKS_URL, or "
            "UCD_GATEWAY_ALLOW_ANONYMOUS=true to serve anyone with every scope"
        )
    return authenticator


def anonymous_warning(settings: Settings) -> str | None:
    """The one line ``serve`` logs at start-up when anyone may call; None when not.

    Logged by the command line rather than by ``create_app``: an app built by a test or
    an embedding program is not a server starting up."""
    if settings.authentication_configured():
        return None
    return (
        f"no authentication configured: anyone who reaches {settings.host} may call with "
        "every scope (set UCD_GATEWAY_API_KEYS_FILE or UCD_GATEWAY_JWT_JWKS_URL in production)"
    )
