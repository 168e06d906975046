"""Bearer JWT authentication and per-endpoint scopes (DESIGN §4).

Tokens are verified with a pinned algorithm list and `iss`, `aud` and `exp` checked, against a
PEM public key (local) or a JWKS URL (production: Keycloak or any OIDC provider). Endpoints
declare the scopes they need with `Depends(require_scopes(...))` and receive the `Principal`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from dtm_shared.problems import Forbidden, Unauthorized
from dtm_shared.settings import ServiceSettings

SCOPES = {
    "households:read": "Read households (personal data redacted unless allowed)",
    "households:write": "Register and change households",
    "households:pii": "See personal data of every organisation's households",
    "duplicates:resolve": "Resolve duplicate candidates",
    "sites:read": "Read sites, assessments, activities and reports",
    "sites:write": "Create and change sites, assessments, activities and reports",
    "reports:review": "Review activity reports as a committee member",
    "indicators:read": "Read indicators and exports",
    "admin": "Administration: every scope",
}

_bearer = HTTPBearer(auto_error=False, description="A JWT: `dtm token --org ORG --scope SCOPE` mints one locally.")


@dataclass(frozen=True)
class Principal:
    sub: str
    org: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenVerifier:
    """Verifies bearer tokens; one per application, built in the composition root."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._algorithms = list(settings.jwt_algorithms)
        self._leeway = settings.jwt_leeway_seconds
        self._key: Any = None
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)
        elif settings.jwt_public_key_file:
            self._key = Path(settings.jwt_public_key_file).read_bytes()
        else:
            raise RuntimeError("set DTM_JWKS_URL or DTM_JWT_PUBLIC_KEY_FILE to verify tokens")

    def verify(self, token: str) -> Principal:
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from exc
        org = claims.get("org")
        if not isinstance(org, str) or not org:
            raise Unauthorized("The token has no `org` claim.", headers={"WWW-Authenticate": "Bearer"})
        raw_scope = claims.get("scope", "")
        scopes = raw_scope.split() if isinstance(raw_scope, str) else list(raw_scope)
        return Principal(sub=str(claims["sub"]), org=org, scopes=frozenset(scopes))


def require_scopes(*needed: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks that it holds every scope in `needed`."""

    async def dependency(
        request: Request,
        security_scopes: SecurityScopes,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
        verifier: TokenVerifier = request.app.state.token_verifier
        principal = verifier.verify(credentials.credentials)
        missing = [s for s in needed if not principal.has(s)]
        if missing:
            raise Forbidden(f"This operation needs the scope(s): {' '.join(missing)}.")
        request.state.principal = principal
        return principal

    dependency.__name__ = "require_" + "_".join(s.replace(":", "_") for s in needed)
    return dependency


def mint_token(
    private_key_pem: bytes,
    *,
    org: str,
    scopes: Iterable[str],
    sub: str | None = None,
    issuer: str = "dtm-local",
    audience: str = "dtm-platform",
    ttl_seconds: int = 8 * 3600,
    algorithm: str = "RS256",
    kid: str | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub or f"{org.lower()}-user",
        "org": org,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key_pem, algorithm=algorithm, headers=headers)


def generate_dev_keypair(directory: Path) -> tuple[Path, Path]:
    """Create (once) an RSA key pair for local tokens; it lives under `.stack/`, out of git."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "dev-private.pem", directory / "dev-public.pem"
    if private.exists() and public.exists():
        return private, public
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public
