"""Authentication of people on every service's HTTP endpoints, and signed expiring links.

Staff present a bearer JWT whose claims carry ``sub``, ``role`` ("staff" or "admin"; admin implies
staff), ``exp``, ``iat``, ``iss`` and ``aud``. In development the tokens are HS256, signed with the
shared ``auth_jwt_secret`` (``lastline token`` issues them). With ``auth_jwks_url`` set, tokens come
from an OIDC provider and are verified with the provider's published RS256/ES256 keys instead; the
provider must put ``role`` (or a ``roles`` list) in its access tokens. Either way a route depends on
``require_role("staff")`` and receives a ``Principal``.

Partner API keys (intake) and what volunteers may do with a link (matching) live in those services;
``sign_link``/``verify_link`` only provide the signed, expiring, purpose-bound token.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast, get_args

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from lastline_shared.ops import ProblemError
from lastline_shared.settings import ServiceSettings

Role = Literal["staff", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_ROLE_RANK: dict[str, int] = {"staff": 0, "admin": 1}

# Asymmetric algorithms accepted from a JWKS: never HS*, so a public key can't be used as an
# HMAC secret (algorithm confusion).
JWKS_ALGORITHMS = ["RS256", "ES256"]
_REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud"]
_LEEWAY = timedelta(seconds=30)  # clock skew between the issuer and this host


class AuthError(Exception):
    """A token that authenticates no one (malformed, expired, wrong issuer or audience, ...)."""


class LinkError(ValueError):
    """A signed link that is invalid or expired."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, from a verified token."""

    subject: str
    role: Role
    claims: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def has_role(self, role: Role) -> bool:
        return _ROLE_RANK[self.role] >= _ROLE_RANK[role]


def issue_staff_token(
    settings: ServiceSettings,
    subject: str,
    role: Role = "staff",
    ttl: timedelta = timedelta(hours=8),
    *,
    now: datetime | None = None,
) -> str:
    """An HS256 staff token signed with the shared secret."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if not subject:
        raise ValueError("subject must not be empty")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "iat": issued,
        "exp": issued + ttl,
        "iss": settings.auth_jwt_issuer,
        "aud": settings.auth_jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.auth_jwt_secret.get_secret_value(), algorithm="HS256")


def _role_from_claims(claims: Mapping[str, Any]) -> Role:
    role = claims.get("role")
    if isinstance(role, str) and role in _ROLE_RANK:
        return cast(Role, role)
    roles = claims.get("roles")  # common OIDC shape: a list, possibly with unrelated roles
    if isinstance(roles, list):
        known = [r for r in roles if isinstance(r, str) and r in _ROLE_RANK]
        if known:
            return cast(Role, max(known, key=_ROLE_RANK.__getitem__))
    raise AuthError("token has no staff or admin role")


class TokenVerifier:
    """Verifies staff tokens with the shared secret, or with the JWKS when one is configured."""

    def __init__(self, settings: ServiceSettings, *, jwks_client: jwt.PyJWKClient | None = None):
        self._settings = settings
        if jwks_client is None and settings.auth_jwks_url:
            jwks_client = jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, timeout=5)
        self._jwks = jwks_client

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """The principal of a valid token, else ``AuthError``. Blocks while fetching a JWKS."""
        key: Any
        if self._jwks is not None:
            try:
                key = self._jwks.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError:
                raise  # the provider is unreachable: not the caller's fault
            except jwt.PyJWTError as exc:
                raise AuthError(f"invalid token: {exc}") from exc
            algorithms = JWKS_ALGORITHMS
        else:
            key, algorithms = self._settings.auth_jwt_secret.get_secret_value(), ["HS256"]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._settings.auth_jwt_audience,
                issuer=self._settings.auth_jwt_issuer,
                leeway=_LEEWAY,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        return Principal(subject=str(claims["sub"]), role=_role_from_claims(claims), claims=claims)

    async def verify_async(self, token: str) -> Principal:
        if self._jwks is None:
            return self.verify(token)  # pure CPU, microseconds
        return await run_in_threadpool(self.verify, token)  # may fetch the JWKS over HTTP


def get_token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier, made on first use from ``app.state.settings`` (see create_http_app).

    Override this dependency in tests to verify with other settings or keys.
    """
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "token_verifier", None)
    if verifier is None:
        settings: ServiceSettings | None = getattr(state, "settings", None)
        if settings is None:
            raise RuntimeError("app.state.settings is unset: build the app with create_http_app")
        verifier = state.token_verifier = TokenVerifier(settings)
    return verifier


_bearer = HTTPBearer(auto_error=False, description="Staff token (JWT): `lastline token --sub ...`")


def _unauthorized(detail: str, *, invalid: bool) -> ProblemError:
    # RFC 6750 §3: a request without credentials gets the bare challenge, a bad token the error.
    challenge = 'Bearer realm="lastline"'
    if invalid:
        challenge += f', error="invalid_token", error_description="{detail}"'
    return ProblemError(401, "Unauthorized", detail, {"WWW-Authenticate": challenge})


def require_role(role: Role = "staff") -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the request's ``Principal`` if it holds ``role`` (admin implies staff).

    Missing, invalid or expired tokens answer 401, a valid token without the role 403, both as
    ``application/problem+json``.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")

    async def authenticated_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        verifier: Annotated[TokenVerifier, Depends(get_token_verifier)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized("missing bearer token", invalid=False)
        try:
            principal = await verifier.verify_async(credentials.credentials)
        except AuthError as exc:
            raise _unauthorized(str(exc).replace('"', "'"), invalid=True) from exc
        except jwt.PyJWKClientConnectionError as exc:
            raise ProblemError(503, "Service Unavailable", "cannot fetch token signing keys") from exc
        if not principal.has_role(role):
            raise ProblemError(
                403,
                "Forbidden",
                f"requires the {role} role",
                {"WWW-Authenticate": 'Bearer realm="lastline", error="insufficient_scope"'},
            )
        return principal

    return authenticated_principal


# --- Signed expiring links ----------------------------------------------------------------------

_LINK_RESERVED = frozenset({"exp", "iat", "aud"})


def _link_audience(purpose: str) -> str:
    # Bound to a purpose: a link for one action (or a staff token) never verifies as another.
    return f"lastline-link:{purpose}"


def sign_link(payload: Mapping[str, Any], ttl: timedelta, *, secret: SecretStr | str, purpose: str) -> str:
    """A compact HS256 token carrying ``payload`` (JSON values) that expires after ``ttl``."""
    if _LINK_RESERVED & payload.keys():
        raise ValueError(f"payload must not set {sorted(_LINK_RESERVED & payload.keys())}")
    now = datetime.now(UTC)
    claims = {**payload, "iat": now, "exp": now + ttl, "aud": _link_audience(purpose)}
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return jwt.encode(claims, key, algorithm="HS256")


def verify_link(token: str, *, secret: SecretStr | str, purpose: str) -> dict[str, Any]:
    """The payload ``sign_link`` was given; raises ``LinkError`` (``expired`` tells which)."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=_link_audience(purpose),
            options={"require": ["exp", "iat", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise LinkError("link expired", expired=True) from exc
    except jwt.PyJWTError as exc:
        raise LinkError(f"invalid link: {exc}") from exc
    return {k: v for k, v in claims.items() if k not in _LINK_RESERVED}
