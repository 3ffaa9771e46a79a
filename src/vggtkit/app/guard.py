"""The web server's guard (an ASGI middleware in front of gradio): the browser cookie, file access, headers.

- Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (a result's address never
  leaves in a Referer header), no framing by other sites, and a Content-Security-Policy.
- The page: :data:`PAGE_CSP`, which runs only the page's own scripts (a fresh nonce per response is added to each
  ``<script>`` tag of gradio's HTML, and the scripts they load), and allows styles, images and connections from the
  app's own origin only (gradio needs inline styles); other responses: :data:`API_CSP`.
- Files (``/gradio_api/file=...`` and gradio's other spellings of that route): refused with 404 unless
  :class:`~vggtkit.app.access.FilePolicy` allows them to this browser; served with ``Content-Disposition:
  attachment``, a content type from :data:`SAFE_TYPES` (else ``application/octet-stream``) and :data:`FILE_CSP`,
  which sandboxes the response: even an HTML file opened as a page cannot run a script or reach the origin.
- Uploads (``POST /gradio_api/upload``): the answer lists the stored files; each is recorded as the uploader's.

Nothing here imports gradio; the middleware needs only the ASGI interface.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from vggtkit.app.access import COOKIE, FilePolicy, OwnerKeys

__all__ = ["API_CSP", "FILE_CSP", "PAGE_CSP", "SAFE_TYPES", "DemoGuard", "requested_file"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PREFIX = "/gradio_api"
# Every route through which gradio serves a file by its path.
_FILE_ROUTES = tuple(f"{prefix}{route}" for prefix in (API_PREFIX, "") for route in ("/file=", "/file/"))
UPLOAD_ROUTE = f"{API_PREFIX}/upload"

_CSP = (
    "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# The page: only the scripts of this response (which carry its nonce) and those they load ('strict-dynamic');
# an injected inline script or event handler does not run. Other responses (API, assets): scripts from the origin.
PAGE_CSP = _CSP.format(scripts="'nonce-{nonce}' 'strict-dynamic'")
API_CSP = _CSP.format(scripts="'self'")
FILE_CSP = "default-src 'none'; sandbox"
# Types a browser never runs as a document or script; a file of any other type is sent as opaque bytes.
SAFE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "model/gltf-binary",
        "application/zip",
        "application/octet-stream",
    }
)
_COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_REPLACED = {b"x-content-type-options", b"referrer-policy", b"x-frame-options", b"content-security-policy"}


def requested_file(path: str) -> str | None:
    """The file a request path asks gradio for (``/gradio_api/file=/a/b.png`` -> ``/a/b.png``), else None.

    ``path`` is the ASGI scope's path, percent-decoded once, exactly what gradio's route receives.
    """
    for route in _FILE_ROUTES:
        if path.startswith(route):
            return path[len(route) :]
    return None


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header is the same as none
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _set_cookie(token: str, secure: bool) -> tuple[bytes, bytes]:
    value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    return b"set-cookie", value.encode()


def _file_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Gradio's file response headers made safe: attachment, a safe type, the sandboxing CSP, private caching."""
    kept, content_type, disposition = [], b"", b""
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-disposition":
            disposition = value
        elif name not in _REPLACED and name != b"cache-control":
            kept.append((name, value))
    mime = content_type.split(b";")[0].strip().decode("latin-1").lower()
    params = disposition[disposition.find(b";") :] if b";" in disposition else b""
    return [
        *kept,
        (b"content-type", mime.encode() if mime in SAFE_TYPES else b"application/octet-stream"),
        (b"content-disposition", b"attachment" + params),
        (b"content-security-policy", FILE_CSP.encode()),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"cache-control", b"private, no-cache"),
    ]


def _api_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    kept = [(n, v) for n, v in headers if n not in _REPLACED]
    return [*kept, (b"content-security-policy", API_CSP.encode())]


def _is_html(message: Message) -> bool:
    return any(n == b"content-type" and v.startswith(b"text/html") for n, v in message.get("headers", ()))


def _with_nonce(body: bytes, nonce: str) -> bytes:
    """Every ``<script`` tag of an HTML page with ``nonce="..."``."""
    return _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', body)


_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


class DemoGuard:
    """ASGI middleware: see the module docstring.

    Args:
        app: the gradio app.
        policy: which browser may read which file.
        keys: cookie values -> owner keys.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], policy: FilePolicy, keys: OwnerKeys) -> None:
        self.app = app
        self.policy = policy
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _cookie(scope)
        fresh = self.keys.key(token) is None
        if fresh:
            token = self.keys.new_token()
        owner = self.keys.key(token)
        extra = [*_COMMON_HEADERS]
        if fresh:
            extra.append(_set_cookie(token, scope.get("scheme") == "https"))  # type: ignore[arg-type]
        path = scope.get("path", "")
        wanted = requested_file(path)
        if wanted is not None:
            await self._file(scope, receive, send, wanted, owner, extra)
        elif scope.get("method") == "POST" and path.rstrip("/") == UPLOAD_ROUTE:
            await self._upload(scope, receive, send, owner, extra)  # type: ignore[arg-type]
        else:
            await self.app(scope, receive, _paging(send, extra))

    async def _file(
        self, scope: Scope, receive: Receive, send: Send, wanted: str, owner: str | None, extra: list
    ) -> None:
        if not self.policy.allows(wanted, owner):
            logger.info("refused file request %s", scope.get("path"))
            headers = [
                *extra,
                (b"content-type", b"text/plain"),
                (b"content-security-policy", FILE_CSP.encode()),
            ]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": b"Not found"})
            return
        await self.app(scope, receive, _rewriting(send, _file_headers, extra))

    async def _upload(self, scope: Scope, receive: Receive, send: Send, owner: str, extra: list) -> None:
        """Pass the upload through; record the files listed in a successful answer as ``owner``'s."""
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            if start is not None and start["status"] == 200:
                self._record(bytes(body), owner)
            forward = _rewriting(send, _api_headers, extra)
            await forward(start)  # type: ignore[arg-type]
            await forward({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, capture)

    def _record(self, body: bytes, owner: str) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        for path in paths if isinstance(paths, list) else []:
            if isinstance(path, str):
                self.policy.record_upload(Path(path), owner)


def _paging(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """``send`` for pages and the API: an HTML answer is buffered, its scripts get a fresh nonce and the page CSP
    allows exactly those; any other answer streams through with :data:`API_CSP`."""
    start: Message | None = None
    body = bytearray()

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and not _is_html(message):
            await _rewriting(send, _api_headers, extra)(message)
            return
        if message["type"] == "http.response.start":
            start = message
            return
        if start is None:  # not HTML: the body streams through
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body"):
            return
        nonce = secrets.token_urlsafe(18)
        page = _with_nonce(bytes(body), nonce)
        headers = [
            (n, v) for n, v in start.get("headers", []) if n not in _REPLACED and n != b"content-length"
        ]
        headers += [
            (b"content-length", str(len(page)).encode()),
            (b"content-security-policy", PAGE_CSP.format(nonce=nonce).encode()),
            *extra,
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    return wrapped


def _rewriting(
    send: Send,
    rewrite: Callable[[list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]],
    extra: list[tuple[bytes, bytes]],
) -> Send:
    """``send`` with the response headers rewritten and ``extra`` added."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*rewrite(list(message.get("headers", []))), *extra]
        await send(message)

    return wrapped
