from __future__ import annotations

from datetime import datetime

from pydantic import Field

from backend.core.schemas import RequestBody, ResponseBody


class LoginRequest(RequestBody):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    totp_code: str | None = Field(default=None, min_length=6, max_length=8, pattern=r"^\d+$")


class RefreshRequest(RequestBody):
    refresh_token: str = Field(min_length=10, max_length=200)


class TokenPair(ResponseBody):
    access_token: str
    token_type: str = "bearer"
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    role: str


class TotpEnrolment(ResponseBody):
    secret: str
    otpauth_uri: str
    qr_svg_data_uri: str


class TotpEnrol(RequestBody):
    password: str = Field(min_length=1, max_length=256, description="Your password, again")
    totp_code: str | None = Field(
        default=None,
        min_length=6,
        max_length=8,
        pattern=r"^\d+$",
        description="A current code of the enrolled authenticator, to replace it",
    )


class TotpConfirm(RequestBody):
    code: str = Field(min_length=6, max_length=8, pattern=r"^\d+$")


class PasswordChange(RequestBody):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)
