"""What every request goes through before a page or a file is served.

- Bound to a loopback address (the default), requests must name a loopback Host: a web page
  elsewhere cannot reach the UI by pointing a DNS name at 127.0.0.1 (DNS rebinding).
- Bound to any other address, every request needs the access token: `Authorization: Bearer
  TOKEN`, or the cookie set by opening the printed `?token=` link once. Compared in constant time.
- Changes are POSTs only, each carrying the page's CSRF token (form field `csrf` or header
  `X-CSRF-Token`, checked by `check_csrf`), and an Origin (or Referer) header, when the browser
  sends one, must be this server's own. A request body is limited in size (uploads included).
- Every response forbids framing, sniffing, and scripts, styles or media from anywhere but the
  app itself (Content-Security-Policy), which also keeps the pages free of any CDN.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.errors import ToolkitError

TOKEN_COOKIE = "ltx2_ui_token"
TOKEN_ENV = "LTX2_UI_TOKEN"
MAX_BODY_BYTES = 2 * 1024 * 1024
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class Forbidden(ToolkitError):
    """A change without this server's CSRF token (answered 403)."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """ASGI middleware: Host, token, Origin and body-size checks, and the security headers."""

    def __init__(self, app: ASGIApp, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token  # None: no token needed (a loopback bind)
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.token is not None and _same(request.query_params.get("token"), self.token):
            await self._token_accepted(request)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> PlainTextResponse | None:
        host = (request.url.hostname or "").lower()
        if self.loopback_only and not is_loopback(host):
            return PlainTextResponse(f"Host {host!r} is not this loopback server", status_code=421)
        if self.token is not None and not self._authorized(request):
            return PlainTextResponse(
                "This UI needs its access token: open the link it printed at start (…/?token=…), or send "
                "'Authorization: Bearer <token>'.", status_code=401,
            )
        if request.method in UNSAFE_METHODS:
            if not self._same_origin(request):
                return PlainTextResponse("Cross-site request refused", status_code=403)
            length = request.headers.get("content-length")
            if length is None:
                return PlainTextResponse("A request body needs a Content-Length", status_code=411)
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return PlainTextResponse(f"Request body over {MAX_BODY_BYTES // 1024} KiB", status_code=413)
        return None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        return any(
            _same(given, self.token)
            for given in (bearer, request.cookies.get(TOKEN_COOKIE), request.query_params.get("token"))
        )

    @staticmethod
    def _same_origin(request: Request) -> bool:
        """The browser's Origin (or Referer) names this server; requests that send neither pass to the CSRF check."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin is None:
            return True
        parts = urlsplit(origin)
        return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.headers.get('host', '')}"

    def _token_accepted(self, request: Request) -> RedirectResponse:
        """`?token=` once: keep it in a cookie and drop it from the address bar."""
        query = urlencode([(key, value) for key, value in request.query_params.multi_items() if key != "token"])
        response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
        response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response


def check_csrf(request: Request, form: FormData | None, csrf: str) -> None:
    """Raise Forbidden unless the request carries this server's CSRF token (form field or header)."""
    given = request.headers.get("x-csrf-token") or (form.get("csrf") if form is not None else None)
    if not isinstance(given, str) or not _same(given, csrf):
        raise Forbidden("this change did not come from one of this UI's pages (missing or wrong CSRF token); reload the page")
