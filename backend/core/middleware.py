"""Pure-ASGI middleware: request ids and access logs, security headers, header and body size limits,
content-type checks."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import RequestHeadersTooLarge, error_body
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
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:  # we already answered 413; whatever the app says after that is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def limited_receive() -> Message:
            # A chunked body has no Content-Length to check up front: count while the app reads, and
            # answer 413 ourselves the moment it goes over (the app, which would turn the interruption
            # into a 400 "error parsing the body", only sees the client go away).
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _send_error(
                            send, 413, "payload_too_large", f"request body exceeds {limit} bytes", request_id
                        )
                        answered = True
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:  # the app's own error; the 413 case is already answered
                raise


class HeaderLimitMiddleware:
    """Refuse requests whose request line and headers together exceed ``max_bytes`` (431), and query
    strings carrying NUL characters (400).

    The HTTP server bounds what it buffers before the application sees a request (`dermalink serve`
    passes the same number to uvicorn); this makes the limit the application's own, whatever the server,
    with the one error shape. No query parameter of ours has a use for NUL, and PostgreSQL refuses it in
    text, so a filter or cursor carrying one is refused here instead of failing in the database.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                await _send_error(
                    send,
                    RequestHeadersTooLarge.status_code,
                    RequestHeadersTooLarge.type,
                    f"request line and headers exceed {self.max_bytes} bytes",
                    request_id_var.get(),
                )
                return
            query = scope.get("query_string", b"")
            if b"\x00" in query or b"%00" in query:
                await _send_error(
                    send,
                    400,
                    "bad_request",
                    "the query string must not contain NUL characters",
                    request_id_var.get(),
                )
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Security headers on every response, whichever part of the app (or which error path) made it.

    - ``Content-Security-Policy`` for the path (`csp_for`): the web app and /docs load only their own
      scripts, styles and data from this origin, and no one may frame them;
    - ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers without
      frame-ancestors), ``Referrer-Policy: no-referrer`` (no patient or case id leaves in a Referer);
    - ``Strict-Transport-Security`` when the request came over TLS (the scheme, which a trusted proxy's
      ``X-Forwarded-Proto`` sets, see `DERMALINK_TRUSTED_PROXIES`);
    - ``Cache-Control: no-store`` on every /api/ response that did not choose its own caching: API
      responses carry patient data, and a shared or browser cache must not keep them.
    """

    def __init__(self, app: ASGIApp, *, csp_for: Callable[[str], str], hsts_seconds: int) -> None:
        self.app = app
        self.csp_for = csp_for
        self.hsts = f"max-age={hsts_seconds}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra = [
            (b"content-security-policy", self.csp_for(path).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts))
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + [(n, v) for n, v in extra if n not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)
