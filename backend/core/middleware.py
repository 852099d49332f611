"""Pure-ASGI middleware: request ids and access logs, body-size limits, content-type checks."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import error_body
from backend.core.logging import log, request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
JSON_TYPES = ("application/json",)
BODY_TYPES = JSON_TYPES + ("multipart/form-data",)


async def _send_error(send: Send, status: int, error_type: str, detail: str, request_id: str | None) -> None:
    body = json.dumps(error_body(error_type, detail)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Accept a sane ``X-Request-ID`` or make one; echo it; log one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = {"code": 500}
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status["code"],
                ms=round((time.perf_counter() - start) * 1000, 1),
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuse bodies over the limit for their path (413) and bodies of the wrong media type (415)."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.limit_for(scope["path"])
        request_id = request_id_var.get()
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _send_error(
                send, 413, "payload_too_large", f"request body exceeds {limit} bytes", request_id
            )
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        if has_body and content_type not in BODY_TYPES:
            await _send_error(
                send,
                415,
                "unsupported_media_type",
                f"content type {content_type or '(none)'} is not accepted; send application/json"
                " (or multipart/form-data for uploads)",
                request_id,
            )
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _send_error(
                send, 413, "payload_too_large", f"request body exceeds {limit} bytes", request_id
            )


class _TooLarge(Exception):
    pass
