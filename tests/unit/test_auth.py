"""Staff authentication (HS256 and JWKS), the require_role dependency, signed links, the CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends, FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from typer.testing import CliRunner

from lastline_shared.auth import (
    AuthError,
    LinkError,
    Principal,
    TokenVerifier,
    issue_staff_token,
    require_role,
    sign_link,
    verify_link,
)
from lastline_shared.cli import app as cli_app
from lastline_shared.cli import parse_duration
from lastline_shared.ops import create_http_app
from lastline_shared.settings import IntakeSettings

SECRET = "test-secret-that-is-long-enough-for-hs256"
settings = IntakeSettings(auth_jwt_secret=SECRET)


def build_app(app_settings: IntakeSettings = settings) -> FastAPI:
    router = APIRouter()

    @router.get("/inbox")
    async def inbox(
        principal: Annotated[Principal, Depends(require_role("staff"))],
    ) -> dict[str, str]:
        return {"sub": principal.subject, "role": principal.role}

    @router.post("/facilities/pause")
    async def pause(
        principal: Annotated[Principal, Depends(require_role("admin"))],
    ) -> dict[str, str]:
        return {"sub": principal.subject}

    return create_http_app(app_settings, routers=[router])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {
        "sub": "alice",
        "role": "staff",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "iss": "lastline",
        "aud": "lastline",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


# --- tokens -----------------------------------------------------------------------------------


def test_issued_token_carries_the_claims() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    token = issue_staff_token(settings, "alice", "admin", timedelta(hours=2), now=now)

    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["sub"] == "alice"
    assert decoded["role"] == "admin"
    assert decoded["iss"] == "lastline"
    assert decoded["aud"] == "lastline"
    assert decoded["exp"] - decoded["iat"] == 7200
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_issue_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="role"):
        issue_staff_token(settings, "alice", "root")  # type: ignore[arg-type]


def test_verifier_round_trip_and_role_hierarchy() -> None:
    verifier = TokenVerifier(settings)

    admin = verifier.verify(issue_staff_token(settings, "bob", "admin"))
    staff = verifier.verify(issue_staff_token(settings, "alice"))

    assert (admin.subject, admin.role) == ("bob", "admin")
    assert admin.has_role("staff")
    assert admin.has_role("admin")
    assert staff.has_role("staff")
    assert not staff.has_role("admin")


@pytest.mark.parametrize(
    ("token_claims", "key", "message"),
    [
        (claims(exp=datetime.now(UTC) - timedelta(minutes=5)), SECRET, "expired"),
        (claims(), "another-secret-that-is-also-long-enough", "Signature"),
        (claims(aud="someone-else"), SECRET, "Audience"),
        (claims(iss="evil"), SECRET, "issuer"),
        (claims(role="superuser"), SECRET, "role"),
        (claims(role=None), SECRET, "role"),
        (claims(exp=None), SECRET, "exp"),
        (claims(sub=None), SECRET, "sub"),
    ],
)
def test_verifier_rejects_bad_tokens(token_claims: dict[str, Any], key: str, message: str) -> None:
    token = jwt.encode(token_claims, key, algorithm="HS256")

    with pytest.raises(AuthError, match=message):
        TokenVerifier(settings).verify(token)


def test_unsigned_tokens_are_rejected() -> None:
    token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]

    with pytest.raises(AuthError):
        TokenVerifier(settings).verify(token)


# --- the dependency over HTTP ------------------------------------------------------------------


async def test_staff_token_opens_staff_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/inbox", headers=bearer(issue_staff_token(settings, "alice")))

    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "role": "staff"}


async def test_admin_implies_staff(client: httpx.AsyncClient) -> None:
    token = issue_staff_token(settings, "bob", "admin")

    assert (await client.get("/inbox", headers=bearer(token))).status_code == 200
    assert (await client.post("/facilities/pause", headers=bearer(token))).status_code == 200


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/inbox")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="lastline"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing bearer token",
    }


async def test_non_bearer_scheme_counts_as_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/inbox", headers={"Authorization": "Basic YWxpY2U6cHc="})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("not-a-jwt", "invalid token"),
        (jwt.encode(claims(exp=datetime.now(UTC) - timedelta(hours=1)), SECRET), "token expired"),
    ],
)
async def test_invalid_or_expired_token_is_401(client: httpx.AsyncClient, token: str, detail: str) -> None:
    response = await client.get("/inbox", headers=bearer(token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["detail"].startswith(detail)


async def test_staff_on_admin_route_is_403(client: httpx.AsyncClient) -> None:
    response = await client.post("/facilities/pause", headers=bearer(issue_staff_token(settings, "alice")))

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Forbidden"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_openapi_documents_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_require_role_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="role"):
        require_role("owner")  # type: ignore[arg-type]


# --- OIDC: tokens verified with the provider's JWKS --------------------------------------------

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
JWKS_SETTINGS = IntakeSettings(
    auth_jwt_secret=SECRET,
    auth_jwks_url="https://idp.invalid/.well-known/jwks.json",
    auth_jwt_issuer="https://idp.invalid/",
    auth_jwt_audience="lastline-api",
)


def jwks() -> dict[str, Any]:
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig"}, {**ec_jwk, "kid": "ec-1", "use": "sig"}]}


class OfflineJWKClient(jwt.PyJWKClient):
    """The real PyJWKClient (key selection by kid, caching) with the HTTP fetch stubbed."""

    def __init__(self, *, reachable: bool = True) -> None:
        super().__init__(JWKS_SETTINGS.auth_jwks_url or "")
        self.reachable = reachable
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        if not self.reachable:
            raise jwt.PyJWKClientConnectionError("connection refused")
        return jwks()


def oidc_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"iss": "https://idp.invalid/", "aud": "lastline-api", **overrides})


def test_jwks_verifies_rs256_and_es256() -> None:
    client = OfflineJWKClient()
    verifier = TokenVerifier(JWKS_SETTINGS, jwks_client=client)
    rs = jwt.encode(oidc_claims(sub="carol"), RSA_KEY, "RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(
        oidc_claims(sub="dave", role=None, roles=["viewer", "admin", "staff"]),
        EC_KEY,
        "ES256",
        headers={"kid": "ec-1"},
    )

    assert verifier.uses_jwks
    assert verifier.verify(rs) == Principal("carol", "staff")
    assert verifier.verify(es).role == "admin"  # the highest known role of a roles list
    assert client.fetches == 1  # the key set is cached


@pytest.mark.parametrize(
    "token",
    [
        # the shared secret is not accepted for staff tokens once a JWKS is configured
        jwt.encode(oidc_claims(), SECRET, "HS256", headers={"kid": "rsa-1"}),
        jwt.encode(oidc_claims(), RSA_KEY, "RS256", headers={"kid": "unknown"}),
        jwt.encode(oidc_claims(aud="lastline"), RSA_KEY, "RS256", headers={"kid": "rsa-1"}),
        jwt.encode(oidc_claims(), rsa.generate_private_key(65537, 2048), "RS256", headers={"kid": "rsa-1"}),
    ],
)
def test_jwks_rejects_foreign_or_confused_tokens(token: str) -> None:
    verifier = TokenVerifier(JWKS_SETTINGS, jwks_client=OfflineJWKClient())

    with pytest.raises(AuthError):
        verifier.verify(token)


async def test_jwks_over_http_and_unreachable_provider() -> None:
    app = build_app(JWKS_SETTINGS)
    transport = httpx.ASGITransport(app=app)
    token = jwt.encode(oidc_claims(role="admin"), RSA_KEY, "RS256", headers={"kid": "rsa-1"})
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
        app.state.token_verifier = TokenVerifier(JWKS_SETTINGS, jwks_client=OfflineJWKClient())
        ok = await c.post("/facilities/pause", headers=bearer(token))
        app.state.token_verifier = TokenVerifier(JWKS_SETTINGS, jwks_client=OfflineJWKClient(reachable=False))
        down = await c.post("/facilities/pause", headers=bearer(token))

    assert ok.status_code == 200
    assert down.status_code == 503
    assert down.json()["detail"] == "cannot fetch token signing keys"


# --- signed links ------------------------------------------------------------------------------


def test_link_round_trip() -> None:
    token = sign_link(
        {"match_id": "m-1", "volunteer_id": "v-2"},
        timedelta(days=3),
        secret=settings.auth_jwt_secret,
        purpose="match-response",
    )

    payload = verify_link(token, secret=settings.auth_jwt_secret, purpose="match-response")

    assert payload == {"match_id": "m-1", "volunteer_id": "v-2"}


def test_expired_link_says_so() -> None:
    token = sign_link({"m": 1}, timedelta(seconds=-1), secret=SECRET, purpose="p")

    with pytest.raises(LinkError) as info:
        verify_link(token, secret=SECRET, purpose="p")
    assert info.value.expired


@pytest.mark.parametrize(
    "token",
    [
        sign_link({"m": 1}, timedelta(hours=1), secret=SECRET, purpose="other-purpose"),
        sign_link({"m": 1}, timedelta(hours=1), secret=SECRET + "x", purpose="p"),
        issue_staff_token(settings, "alice"),
        "garbage",
    ],
)
def test_link_bound_to_purpose_and_secret(token: str) -> None:
    with pytest.raises(LinkError) as info:
        verify_link(token, secret=SECRET, purpose="p")
    assert not info.value.expired


def test_tampered_link_is_rejected() -> None:
    token = sign_link({"volunteer_id": "v-1"}, timedelta(hours=1), secret=SECRET, purpose="p")
    header, _payload, signature = token.split(".")
    forged = jwt.encode({"volunteer_id": "v-2"}, "x" * 32).split(".")[1]

    with pytest.raises(LinkError):
        verify_link(f"{header}.{forged}.{signature}", secret=SECRET, purpose="p")


def test_link_is_not_a_staff_token() -> None:
    token = sign_link({"sub": "alice", "role": "admin"}, timedelta(hours=1), secret=SECRET, purpose="p")

    with pytest.raises(AuthError):
        TokenVerifier(settings).verify(token)


def test_link_payload_cannot_set_reserved_claims() -> None:
    with pytest.raises(ValueError, match="exp"):
        sign_link({"exp": 0}, timedelta(hours=1), secret=SECRET, purpose="p")


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_token_verifies_with_the_services_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_JWT_SECRET", SECRET)
    monkeypatch.delenv("AUTH_JWKS_URL", raising=False)

    result = CliRunner().invoke(cli_app, ["token", "--sub", "alice", "--role", "admin", "--ttl", "1h"])

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    principal = TokenVerifier(IntakeSettings()).verify(token)
    assert (principal.subject, principal.role) == ("alice", "admin")
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["exp"] - decoded["iat"] == 3600
    assert "development secret" not in result.stderr


def test_cli_warns_about_the_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTH_JWT_SECRET", "INTAKE_AUTH_JWT_SECRET", "AUTH_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(cli_app, ["token", "--sub", "alice", "--service", "intake"])

    assert result.exit_code == 0
    assert "development secret" in result.stderr
    assert TokenVerifier(IntakeSettings()).verify(result.stdout.strip()).role == "staff"


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--sub", "alice", "--ttl", "soon"],
        ["token", "--sub", "alice", "--role", "root"],
        ["token", "--sub", "alice", "--service", "billing"],
        ["token"],
    ],
)
def test_cli_rejects_bad_arguments(args: list[str]) -> None:
    result = CliRunner().invoke(cli_app, args)

    assert result.exit_code == 2
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("8h", timedelta(hours=8)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "8", "h", "1.5h", "-1h", "1m1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
