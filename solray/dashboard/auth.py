"""Token authentication for every HTTP and WebSocket endpoint of the dashboard.

A request proves it holds the cluster token with, in this order:
  * ``Authorization: Bearer <token>`` (what ``JobSubmissionClient(headers=...)``,
    ``RAY_JOB_HEADERS`` and Ray's own token-auth clients send),
  * ``X-Ray-Authorization: Bearer <token>`` (for proxies that own ``Authorization``),
  * a ``solray-authentication-token`` or ``ray-authentication-token`` cookie (browsers),
  * on the paths given as ``query_token_paths`` only (``/metrics``, for scrapers that
    cannot set headers), a ``?token=<token>`` query parameter.
Missing credentials get 401, wrong ones 403 (Ray's client words both clearly); neither
reaches a handler, so an unauthenticated peer can run nothing. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie

COOKIE_NAMES = ("solray-authentication-token", "ray-authentication-token")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def presented_token(scope) -> str | None:
    headers = _headers(scope)
    for name in ("authorization", "x-ray-authorization"):
        value = headers.get(name, "").strip()
        if value:
            scheme, _, credential = value.partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else ""
    if "cookie" in headers:
        try:
            jar = SimpleCookie(headers["cookie"])
        except CookieError:
            return ""
        for name in COOKIE_NAMES:
            if name in jar:
                return jar[name].value
    return None


def query_token(scope) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("token")
    return values[0] if values else None


class TokenAuthMiddleware:
    """ASGI middleware: refuse any request that does not carry the cluster token."""

    def __init__(
        self, app, token: str, open_paths: frozenset[str] = frozenset(), query_token_paths: frozenset[str] = frozenset()
    ):
        self.app = app
        self._token = token.encode()
        self._open_paths = open_paths
        self._query_token_paths = query_token_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self._open_paths:
            return await self.app(scope, receive, send)
        token = presented_token(scope)
        if token is None and scope.get("path") in self._query_token_paths:
            token = query_token(scope)
        if token and hmac.compare_digest(token.encode(), self._token):
            return await self.app(scope, receive, send)
        status = 401 if not token else 403  # none (or an empty one): 401; a wrong one: 403
        text = (
            "Unauthorized: Missing authentication token. Send 'Authorization: Bearer <token>' "
            "(the cluster token, in SOLRAY_TOKEN or the cluster file on the head)."
            if status == 401
            else "Forbidden: Invalid authentication token"
        )
        prefix = "http"
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            if "websocket.http.response" not in scope.get("extensions", {}):
                # Closing before accepting makes the server answer the handshake with 403.
                await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
                return
            prefix = "websocket.http"  # answer the handshake with a plain HTTP error
        body = text.encode()
        await send(
            {
                "type": f"{prefix}.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": f"{prefix}.response.body", "body": body})
