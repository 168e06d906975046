"""RFC 9457 `application/problem+json` errors.

Use cases raise `Problem` subclasses; the handlers installed by `install_problem_handlers` turn
them, request validation errors, HTTP errors and database conflicts into problem documents.
Validation errors never echo the submitted values back (they may carry personal data).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://dtm-platform.org/problems/"
log = structlog.get_logger("problems")


class ProblemFieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", examples=[TYPE_BASE + "validation-error"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None


class Problem(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[ProblemFieldError | dict[str, Any]] | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = [e if isinstance(e, ProblemFieldError) else ProblemFieldError(**e) for e in errors or []]
        if title:
            self.title = title
        self.headers = headers or {}

    def to_detail(self, instance: str | None = None) -> ProblemDetail:
        return ProblemDetail(
            type=TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors or None,
        )


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class ValidationProblem(Problem):
    status, slug, title = 422, "validation-error", "Validation failed"

    @classmethod
    def field(cls, loc: Sequence[str | int], msg: str, type_: str = "value_error") -> ValidationProblem:
        return cls(msg, errors=[ProblemFieldError(loc=list(loc), msg=msg, type=type_)])


class PreconditionRequired(Problem):
    status, slug, title = 428, "precondition-required", "Precondition required"


def problem_response(detail: ProblemDetail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        detail.model_dump(exclude_none=True),
        status_code=detail.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def validation_errors(errors: Sequence[Any]) -> list[ProblemFieldError]:
    """Pydantic/FastAPI errors without the submitted input (no personal data in answers)."""
    out = []
    for err in errors:
        msg = str(err.get("msg", "invalid"))
        out.append(
            ProblemFieldError(
                loc=[p for p in err.get("loc", ()) if isinstance(p, str | int)], msg=msg, type=err.get("type")
            )
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.to_detail(request.url.path), exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        body_errors = [e for e in errors if e.loc[:1] == ["body"]]
        if any(e.type == "json_invalid" for e in body_errors):
            detail = ProblemDetail(
                type=TYPE_BASE + "malformed-json",
                title="Malformed JSON body",
                status=400,
                detail="The request body is not valid JSON.",
                errors=errors,
                instance=request.url.path,
            )
            return problem_response(detail)
        detail = ProblemDetail(
            type=TYPE_BASE + "validation-error",
            title="Validation failed",
            status=422,
            detail="; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5]),
            errors=errors,
            instance=request.url.path,
        )
        return problem_response(detail)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        detail = ProblemDetail(
            type="about:blank",
            title=title,
            status=status,
            detail=str(exc.detail) if exc.detail else None,
            instance=request.url.path,
        )
        return problem_response(detail, dict(exc.headers or {}))

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        """Database refusals by SQLSTATE class: 22 (data: a NUL byte, a number out of range...)
        is bad input (422); 23 (integrity) and 40 (serialisation, deadlock) are conflicts (409);
        anything else (the database unreachable...) is 503. Never the statement or its values."""
        assert isinstance(exc, DBAPIError)
        state = sqlstate(exc)
        log.warning("database_refused", path=request.url.path, sqlstate=state, error_class=type(exc.orig).__name__)
        if state.startswith("22"):
            status, slug, title, detail = (
                422,
                "validation-error",
                "Validation failed",
                ("The request holds a value the database cannot store."),
            )
        elif state.startswith(("23", "40")):
            status, slug, title, detail = (
                409,
                "conflict",
                "Conflict",
                ("The change conflicts with data already stored or with a concurrent change; retry."),
            )
        else:
            status, slug, title, detail = (
                503,
                "unavailable",
                "Service unavailable",
                ("The database could not complete the request; retry later."),
            )
        return problem_response(
            ProblemDetail(type=TYPE_BASE + slug, title=title, status=status, detail=detail, instance=request.url.path)
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error_class=type(exc).__name__)
        return problem_response(
            ProblemDetail(
                type=TYPE_BASE + "internal-error",
                title="Internal server error",
                status=500,
                detail="An unexpected error occurred; it has been logged.",
                instance=request.url.path,
            )
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_database)
    app.add_exception_handler(Exception, on_unexpected)


def sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE of a database error, wherever the driver adapter put it ('' if none)."""
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


#: For `responses=` on routes, so generated clients know the error model: `model` registers
#: `ProblemDetail` in the components, the explicit schema makes `application/problem+json` parse into it.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "model": ProblemDetail,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}},
    }
    for code in (400, 401, 403, 404, 409, 412, 413, 422)
}
