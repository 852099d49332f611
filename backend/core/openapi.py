"""The error responses every API route documents in OpenAPI, built from the one error hierarchy.

Each router passes ``responses=error_responses(<the errors its routes raise>)``; the errors any API route
can meet (a malformed or oversized request, no or a bad token, the wrong role, validation, an unexpected
failure) are always included. Every error body has the one shape, `ErrorBody`, so clients (and the
schemathesis test that checks responses against this document) can rely on it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, Field

from backend.core.errors import (
    AccountLocked,
    BadRequest,
    DermaLinkError,
    InvalidCredentials,
    InvalidToken,
    NotAuthenticated,
    PayloadTooLarge,
    PermissionDenied,
    RequestHeadersTooLarge,
    TooManyRequests,
    TotpRequired,
    UnsupportedMediaType,
    ValidationFailed,
)


class ErrorBody(BaseModel):
    """Every error DermaLink answers with."""

    type: str = Field(description="What went wrong, for programs: e.g. not_found, validation_error")
    detail: Any = Field(
        description="What went wrong, for people; for validation errors a list of {loc, msg, type}"
    )


# Errors any /api/ route can answer, whatever it does. `malformed_json` and `validation_error` come from
# request parsing, `payload_too_large`, `unsupported_media_type` and `header_too_large` from the
# middleware, `internal_error` from the last-resort handler.
COMMON_ERRORS: tuple[type[DermaLinkError], ...] = (
    BadRequest,
    NotAuthenticated,
    InvalidToken,
    PermissionDenied,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    RequestHeadersTooLarge,
    DermaLinkError,  # 500 internal_error
)
EXTRA_TYPES = {400: ["malformed_json"], 404: ["not_found"], 405: ["method_not_allowed"]}
# What signing in and re-authenticating add.
AUTH_ERRORS: tuple[type[DermaLinkError], ...] = (
    InvalidCredentials,
    TotpRequired,
    TooManyRequests,
    AccountLocked,
)


def error_responses(
    *errors: type[DermaLinkError], notes: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A FastAPI ``responses`` map: one entry per status, naming the error types it can carry."""
    types: dict[int, list[str]] = defaultdict(list)
    for error in (*COMMON_ERRORS, *errors):
        if error.type not in types[error.status_code]:
            types[error.status_code].append(error.type)
    for status in list(types):
        types[status] += [t for t in EXTRA_TYPES.get(status, []) if t not in types[status]]
    notes = notes or {}
    return {
        status: {
            "model": ErrorBody,
            "description": f"Error ({', '.join(sorted(types[status]))})"
            + (f". {notes[status]}" if status in notes else ""),
        }
        for status in sorted(types)
    }
