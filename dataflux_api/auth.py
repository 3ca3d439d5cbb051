"""JWT bearer tokens with permissions, and the Litestar guard that checks a route's permission.

Who the caller is comes from `dataflux_api.policy` (one request policy for REST, web UI and MCP).

Tokens are HS256 only (the algorithm is pinned: `alg: none` and every other algorithm are rejected),
must carry `exp`, `sub` and `iss="dataflux"`, and list their `permissions`. `admin` allows everything.
With no secret configured the API runs open, which `create_app` permits on loopback addresses only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from dataflux_api.errors import Forbidden, Unauthorized
from dataflux_pipelines.settings import SettingsError

ALGORITHM = "HS256"
ISSUER = "dataflux"
MIN_SECRET_BYTES = 32
PERMISSIONS = ("assets:read", "assets:write", "search", "admin")
_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    permissions: frozenset[str]

    def allows(self, permission: str) -> bool:
        return "admin" in self.permissions or permission in self.permissions


OPEN_PRINCIPAL = Principal("anonymous (open mode)", frozenset(PERMISSIONS))


def check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"DATAFLUX_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(got {len(secret.encode())}); generate one with `openssl rand -hex 32`"
        )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def parse_ttl(value: str | int) -> int:
    """Seconds from `3600`, `90s`, `30m`, `12h` or `7d`."""
    match = _TTL.match(str(value))
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"TTL {value!r} is not a positive duration like 3600, 30m, 12h or 7d")
    return int(match.group(1)) * _TTL_UNITS[match.group(2)]


def create_token(
    secret: str,
    subject: str,
    permissions: Iterable[str],
    ttl_seconds: int,
    *,
    now: dt.datetime | None = None,
) -> str:
    """A signed token for `subject` with the given permissions, valid for `ttl_seconds`."""
    check_secret(secret)
    perms = sorted(set(permissions))
    unknown = [p for p in perms if p not in PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; use {', '.join(PERMISSIONS)}")
    if not subject.strip():
        raise ValueError("the token subject must not be empty")
    issued = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": subject,
        "iss": ISSUER,
        "iat": issued,
        "exp": issued + dt.timedelta(seconds=ttl_seconds),
        "permissions": perms,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Principal:
    """The principal of a valid token; `Unauthorized` with the reason otherwise."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token_expired", "the bearer token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("invalid_token", f"the bearer token is not valid: {exc}") from exc
    permissions = claims.get("permissions", [])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise Unauthorized("invalid_token", "the token's permissions claim must be a list of strings")
    return Principal(str(claims["sub"]), frozenset(p for p in permissions if p in PERMISSIONS))


def require_permission(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: the caller's token must grant the handler's `opt["permission"]`."""
    permission = handler.opt.get("permission")
    if permission is None:
        return
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized("missing_token", "this route needs a bearer token")
    if not principal.allows(permission):
        raise Forbidden(
            "missing_permission",
            f"the token of {principal.subject!r} lacks the {permission!r} permission this route needs",
        )
