from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from dtm_shared.auth import TokenVerifier, generate_dev_keypair, mint_token
from dtm_shared.problems import Unauthorized
from dtm_shared.settings import ServiceSettings


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_dev_keypair(tmp_path_factory.mktemp("k"))


def verifier(public: Path, **kw: object) -> TokenVerifier:
    return TokenVerifier(ServiceSettings(jwt_public_key_file=public, **kw))


def test_valid_token_gives_principal(keys: tuple[Path, Path]) -> None:
    private, public = keys
    token = mint_token(private.read_bytes(), org="UNHCR", scopes=["households:read", "sites:read"])
    p = verifier(public).verify(token)
    assert p.org == "UNHCR"
    assert p.has("sites:read")
    assert not p.has("households:write")


def test_admin_scope_has_everything(keys: tuple[Path, Path]) -> None:
    private, public = keys
    p = verifier(public).verify(mint_token(private.read_bytes(), org="DNDS", scopes=["admin"]))
    assert p.has("households:pii")


@pytest.mark.parametrize(
    "make",
    [
        lambda priv: mint_token(priv, org="X", scopes=[], ttl_seconds=-120),  # expired
        lambda priv: mint_token(priv, org="X", scopes=[], issuer="someone-else"),
        lambda priv: mint_token(priv, org="X", scopes=[], audience="other-api"),
        lambda priv: jwt.encode(
            {"sub": "a", "org": "X", "iss": "dtm-local", "aud": "dtm-platform", "exp": int(time.time()) + 60},
            "secret",
            algorithm="HS256",
        ),  # alg not pinned
        lambda priv: jwt.encode(
            {"sub": "a", "iss": "dtm-local", "aud": "dtm-platform", "exp": int(time.time()) + 60},
            priv,
            algorithm="RS256",
        ),  # no org
        lambda priv: "not.a.jwt",
    ],
)
def test_invalid_tokens_are_refused(keys: tuple[Path, Path], make: object) -> None:
    private, public = keys
    token = make(private.read_bytes())  # type: ignore[operator]
    with pytest.raises(Unauthorized):
        verifier(public).verify(token)


def test_token_from_another_key_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    _, public = keys
    other_private, _ = generate_dev_keypair(tmp_path)
    with pytest.raises(Unauthorized):
        verifier(public).verify(mint_token(other_private.read_bytes(), org="X", scopes=["admin"]))


def test_verifier_needs_a_key_source() -> None:
    with pytest.raises(RuntimeError):
        TokenVerifier(ServiceSettings(jwt_public_key_file=None, jwks_url=None))
