"""One request policy for every HTTP transport DataFlux serves (REST, web UI, MCP).

In order, for every request outside the public paths:
1. **Host**: the Host header must name a loopback host or an allowed host (DNS rebinding: a page on
   evil.example that resolves its own name to 127.0.0.1 sends `Host: evil.example`).
2. **Origin**: a browser's Origin must be the server's own origin, a loopback origin or a configured
   one (`DATAFLUX_ALLOWED_ORIGINS`); anything else is refused, in every mode.
3. **Cross-site state changes**: a state-changing request (POST, PUT, PATCH, DELETE) that the browser
   marks `Sec-Fetch-Site: cross-site` is refused even without an Origin header.
4. **Token**: with a secret, a valid bearer token (Authorization header, or the web UI's
   `dataflux_token` cookie); without one, the open principal, which serving allows on loopback only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from dataflux_api.auth import OPEN_PRINCIPAL, Principal, check_secret, decode_token, is_loopback
from dataflux_api.errors import DataFluxError, Forbidden, Unauthorized
from dataflux_pipelines.settings import Settings, SettingsError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "dataflux_token"
PRINCIPAL_KEY = "dataflux.principal"
# Litestar reads the caller from scope["user"]; the MCP tools from PRINCIPAL_KEY.
USER_KEY = "user"


def _hostname(value: str) -> str:
    """`example.com:8000` → `example.com`; `[::1]:8000` → `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class RequestPolicy:
    """What a server accepts: its secret (None = open, loopback only), extra hosts and origins."""

    secret: str | None
    allowed_hosts: frozenset[str] = frozenset()
    allowed_origins: frozenset[str] = frozenset()
    public_paths: tuple[re.Pattern[str], ...] = field(default_factory=tuple)

    @classmethod
    def for_server(
        cls,
        settings: Settings,
        bind_host: str,
        *,
        extra_origins: Iterable[str] = (),
        public_paths: Iterable[str] = (),
    ) -> RequestPolicy:
        """The policy of a server bound to `bind_host`: a secret is required beyond loopback."""
        if settings.jwt_secret:
            check_secret(settings.jwt_secret)
        elif not is_loopback(bind_host):
            raise SettingsError(
                f"refusing to serve on {bind_host} without DATAFLUX_JWT_SECRET: bind to 127.0.0.1, or set a "
                "secret of at least 32 bytes (`openssl rand -hex 32`) so clients must send a bearer token"
            )
        hosts = {h.strip().lower() for h in settings.allowed_hosts if h.strip()}
        if not is_loopback(bind_host) and bind_host not in ("0.0.0.0", "::"):
            hosts.add(bind_host.lower())
        origins = {
            o.strip().rstrip("/").lower() for o in (*settings.allowed_origins, *extra_origins) if o.strip()
        }
        return cls(
            settings.jwt_secret or None,
            frozenset(hosts),
            frozenset(origins),
            tuple(re.compile(p) for p in public_paths),
        )

    @property
    def auth_mode(self) -> str:
        return "jwt" if self.secret else "open"

    def host_allowed(self, host: str) -> bool:
        if not host:
            return False
        name = _hostname(host)
        return (
            is_loopback(name)
            or "*" in self.allowed_hosts
            or name in self.allowed_hosts
            or host.lower() in self.allowed_hosts
        )

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        # The server's own origin (its web UI) and loopback pages are the same site.
        return parts.netloc == host.lower() or is_loopback(parts.hostname)

    def is_public(self, path: str) -> bool:
        return any(p.match(path) for p in self.public_paths)

    def evaluate(self, method: str, path: str, headers: Mapping[str, str]) -> Principal | None:
        """The caller's principal (None on a public path), or a `DataFluxError` saying why not."""
        host = headers.get("host", "")
        if not self.host_allowed(host):
            raise Forbidden(
                "host_not_allowed", f"the Host {host!r} is not served here (DATAFLUX_ALLOWED_HOSTS)"
            )
        origin = headers.get("origin")
        if origin and origin != "null" and not self.origin_allowed(origin, host):
            raise Forbidden("origin_not_allowed", f"requests from the origin {origin!r} are not allowed")
        if origin == "null" and method not in SAFE_METHODS:
            raise Forbidden("origin_not_allowed", "requests from an opaque origin cannot change anything")
        if method not in SAFE_METHODS and headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise Forbidden("cross_site_request", "a cross-site page cannot change anything here")
        if self.is_public(path):
            return None
        if self.secret is None:
            return OPEN_PRINCIPAL
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized(
                "missing_token", "send `Authorization: Bearer <token>` (see `dataflux token create`)"
            )
        principal = decode_token(self.secret, token)
        if not principal.permissions:
            raise Forbidden("missing_permission", f"the token of {principal.subject!r} grants no permission")
        return principal


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer …`, else of the web UI's cookie; `Unauthorized` when malformed."""
    header = headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("invalid_token", "the Authorization header must be `Bearer <token>`")
        return token.strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is a missing token, not a server error
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def error_body(code: str, message: str, status: int, field: str | None = None) -> bytes:
    """DataFlux's one error shape: `{"error": {"code", "message", "field", "status"}}`."""
    return json.dumps(
        {"error": {"code": code, "message": message, "field": field, "status": status}}
    ).encode()


class PolicyGuard:
    """ASGI middleware applying a `RequestPolicy` before the app (Litestar or the MCP app) sees the request."""

    def __init__(self, app: ASGIApp, policy: RequestPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = self.policy.evaluate(scope["method"].upper(), scope["path"], headers)
        except DataFluxError as exc:
            extra: list[tuple[bytes, bytes]] = []
            if exc.status == 401:
                extra.append((b"www-authenticate", b'Bearer realm="dataflux"'))
            body = error_body(exc.code, exc.message, exc.status)
            await send(
                {
                    "type": "http.response.start",
                    "status": exc.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if principal is not None:
            scope[USER_KEY] = principal
            scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)


def principal_of(scope: Mapping[str, Any]) -> Principal | None:
    value = scope.get(PRINCIPAL_KEY)
    return value if isinstance(value, Principal) else None
