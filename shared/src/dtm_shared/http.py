"""HTTP conventions every service shares: ETag/If-Match on aggregate versions and opaque list cursors."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dtm_shared.problems import BadRequest, PreconditionFailed, PreconditionRequired, ValidationProblem


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(value: str | None) -> list[int] | None:
    """The versions an `If-Match` header names; None for `*` or no header. A malformed header is a 400."""
    if value is None or value.strip() == "*":
        return None
    versions = []
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if not (tag.isascii() and tag.isdigit() and len(tag) <= 18):
            raise BadRequest(f"If-Match must be an ETag of this API, like '\"3\"'; got {part.strip()[:40]!r}.")
        versions.append(int(tag))
    return versions


def check_if_match(value: str | None, current: int, *, required: bool) -> None:
    """412 when `If-Match` names another version than `current`; 428 when it is required and absent."""
    if value is None:
        if required:
            raise PreconditionRequired(
                f"This change needs an If-Match header with the current ETag (now {etag(current)}).",
            )
        return
    versions = parse_if_match(value)
    if versions is not None and current not in versions:
        raise PreconditionFailed(
            f"The resource has changed: its ETag is now {etag(current)}, not {value.strip()[:40]}. "
            "Read it again and retry.",
            headers={"ETag": etag(current)},
        )


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, shape: tuple[type, ...]) -> list[Any] | None:
    """The values a cursor carries, checked against `shape` (one type per value); 422 when invalid."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or not all(
            isinstance(v, t) and not (t is int and isinstance(v, bool)) for v, t in zip(values, shape, strict=True)
        )
    ):
        raise ValidationProblem.field(["query", "cursor"], "cursor is not one this API returned")
    return values
