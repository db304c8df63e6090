"""Security of `cosmos ui`: the access token, CSRF tokens and the same-origin check.

- Bound to a non-loopback address, every request needs the access token:
  ``?token=...`` once (the answer sets an HttpOnly cookie and, to a GET,
  sends the browser to the same URL without the token: it stays out of the
  history, bookmarks and screenshots), the cookie after that; without it: 401.
- Bound to loopback, the Host header must name this machine (localhost or a
  loopback address: a DNS-rebinding page cannot read the app): else 400.
- Every request but GET and HEAD (they change nothing) needs the app's CSRF
  token, as the ``X-CSRF-Token`` header or the field ``csrf`` of a urlencoded
  form (other bodies, e.g. multipart, need the header: ui.js sends it), and an
  Origin (or, without one, a Referer) of this very host: else 403.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The token cookie's name, with the port after it: cookies do not tell ports
# apart, so two apps of one host would overwrite each other's.
TOKEN_COOKIE = "cosmos_ui_token_{port}"  # noqa: S105 (a name, not a secret)
TOKEN_PARAM = "token"  # noqa: S105
CSRF_HEADER = b"x-csrf-token"
CSRF_FIELD = "csrf"
# A form posted without script; any other body (JSON, multipart) needs the header.
FORM_TYPE = "application/x-www-form-urlencoded"
SAFE_METHODS = ("GET", "HEAD")
LOOPBACK_NAMES = ("localhost",)
# Sent with every answer: scripts only from the app's own files (an injected
# inline script would not run), no framing (clickjacking), no type sniffing, no
# embedding of its videos and pictures by another site's page.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; media-src 'self'; connect-src 'self'; object-src 'none'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# Largest request body read to find a form's CSRF field.
MAX_FORM_BYTES = 16 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for an address (or name) that only this machine can reach ("[::1]" too)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret (None never matches)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class SecurityMiddleware:
    """ASGI middleware: the access token, the loopback Host check, CSRF and same origin.

    Args:
        app: The app it guards.
        token: The access token (None: none needed, the app is bound to loopback).
        csrf: The CSRF token of every page.
        loopback: The app is bound to a loopback address.
    """

    def __init__(self, app: ASGIApp, token: str | None, csrf: str, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        send = _with_headers(send, SECURITY_HEADERS)
        request = Request(scope)
        if self.loopback and not is_loopback(_host_name(request.headers.get("host", ""))):
            await PlainTextResponse("unknown host", 400)(scope, receive, send)
            return
        via_query = False
        if self.token is not None:
            cookie_name = TOKEN_COOKIE.format(port=(scope.get("server") or ("", ""))[1])
            if same(request.cookies.get(cookie_name), self.token):
                pass
            elif same(request.query_params.get(TOKEN_PARAM), self.token):
                via_query = True
            else:
                await PlainTextResponse(
                    "this cosmos ui needs its access token: open the URL it printed", 401
                )(scope, receive, send)
                return
        if request.method not in SAFE_METHODS:
            problem, receive = await self._state_change_problem(request, scope, receive)
            if problem:
                await PlainTextResponse(problem, 403)(scope, receive, send)
                return
        if via_query:
            assert self.token is not None
            cookie = f"{cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            send = _with_headers(send, ((b"set-cookie", cookie.encode()),))
            if request.method in SAFE_METHODS:
                await _without_token(request)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _state_change_problem(
        self, request: Any, scope: Scope, receive: Receive
    ) -> tuple[str | None, Receive]:
        """Why a state-changing request is refused (None: it is not), and its body again."""
        if not _same_origin(request):
            return "cross-origin request refused", receive
        if same(request.headers.get(CSRF_HEADER.decode()), self.csrf):
            return None, receive
        body = await _read_body(receive)
        if body is None:
            return "request body too large", receive
        given = None
        if request.headers.get("content-type", "").startswith(FORM_TYPE):
            given = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [None])[0]
        if not same(given, self.csrf):
            return "missing or wrong CSRF token", _replay(body, receive)
        return None, _replay(body, receive)


def _without_token(request: Any) -> Any:
    """A redirect (303) to the request's own URL without the token (the path stays local)."""
    from urllib.parse import urlencode

    from starlette.responses import RedirectResponse

    kept = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
    where = "/" + request.url.path.lstrip("/")  # "//host/x" would leave this app
    if kept:
        where += "?" + urlencode(kept)
    return RedirectResponse(where, 303, headers={"Cache-Control": "no-store"})


def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` that adds ``headers`` to the response's start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return sending


def _host_name(host: str) -> str:
    """The name of a Host header without its port ("[::1]:8765" -> "[::1]")."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _same_origin(request: Any) -> bool:
    """True if the Origin header (else the Referer) names the host the request was sent to."""
    host = request.headers.get("host")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not host or not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == host


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (None if larger than MAX_FORM_BYTES)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, then: Receive) -> Receive:
    """A receive channel that hands ``body`` over again, then is the client's own (``then``)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive
