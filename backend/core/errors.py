"""The one typed error hierarchy. Every error is rendered as ``{"type": ..., "detail": ...}``."""

from __future__ import annotations

from typing import Any


class DermaLinkError(Exception):
    status_code = 500
    type = "internal_error"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail if detail is not None else self.default_detail()
        self.headers = headers or {}
        super().__init__(str(self.detail))

    @classmethod
    def default_detail(cls) -> str:
        return cls.type.replace("_", " ")


class BadRequest(DermaLinkError):
    status_code, type = 400, "bad_request"


class NotAuthenticated(DermaLinkError):
    status_code, type = 401, "not_authenticated"

    def __init__(self, detail: Any = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class InvalidToken(NotAuthenticated):
    type = "invalid_token"


class InvalidCredentials(NotAuthenticated):
    type = "invalid_credentials"


class TotpRequired(NotAuthenticated):
    type = "totp_required"


class PermissionDenied(DermaLinkError):
    status_code, type = 403, "forbidden"


class NotFound(DermaLinkError):
    status_code, type = 404, "not_found"


class Conflict(DermaLinkError):
    status_code, type = 409, "conflict"


class Gone(DermaLinkError):
    """The data existed and was erased (the patient's erasure); it will not come back."""

    status_code, type = 410, "erased"


class PreconditionFailed(DermaLinkError):
    status_code, type = 412, "precondition_failed"


class PayloadTooLarge(DermaLinkError):
    status_code, type = 413, "payload_too_large"


class RequestHeadersTooLarge(DermaLinkError):
    status_code, type = 431, "header_too_large"


class UnsupportedMediaType(DermaLinkError):
    status_code, type = 415, "unsupported_media_type"


class ValidationFailed(DermaLinkError):
    status_code, type = 422, "validation_error"


class AccountLocked(DermaLinkError):
    status_code, type = 423, "account_locked"


class TooManyRequests(DermaLinkError):
    status_code, type = 429, "too_many_requests"


class ServiceUnavailable(DermaLinkError):
    status_code, type = 503, "service_unavailable"


def error_body(error_type: str, detail: Any) -> dict[str, Any]:
    return {"type": error_type, "detail": detail}
