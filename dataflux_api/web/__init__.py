"""The DataFlux web UI: server-rendered pages at `/` over the same service as the REST API.

`create_app` mounts `web_router(settings)` and `template_config()` and lists `PUBLIC_PATHS` among the
request policy's public paths: the policy still checks Host and Origin there, while the token is
checked here, so a page without one sends the browser to the sign-in page instead of a JSON 401.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader, Cookie, ResponseHeader, State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from dataflux_api.auth import OPEN_PRINCIPAL, decode_token
from dataflux_api.errors import DataFluxError, Unauthorized
from dataflux_api.policy import TOKEN_COOKIE, bearer_token
from dataflux_api.web.pages import SignIn, WebPages, page_context
from dataflux_pipelines.settings import Settings

# The pages' own paths: public to the request policy (Host/Origin checks only), signed in by
# `_sign_in_required` below. Anchored, so `/api/v1/assets` is never among them.
PUBLIC_PATHS = ("^/$", "^/assets/[^/]+$", "^/library$", "^/login$", "^/logout$", "^/static/")
HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Pages load only their own script, styles and media; nothing inline, nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
_HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=_CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
]
_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Already exists",
    413: "Too large",
    422: "Not valid",
    503: "Not available",
}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def _sign_in(request: Request[Any, Any, Any], code: str) -> Redirect:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    cookies = []
    if code != "missing_token":  # a stale or forged cookie is dropped, so the next visit starts clean
        cookies.append(
            Cookie(key=TOKEN_COOKIE, value="", max_age=0, path="/", httponly=True, samesite="strict")
        )
    return Redirect(f"/login?reason={code}&next={quote(target, safe='')}", status_code=303, cookies=cookies)


def _page_error(request: Request[Any, Any, Any], status: int, code: str, message: str) -> Template:
    state: State = request.app.state
    ctx = page_context(
        request,
        state,
        status=status,
        code=code,
        message=message,
        title=_TITLES.get(status, "Something went wrong"),
    )
    return Template("error.html", context=ctx, status_code=status)


def _domain_error(request: Request[Any, Any, Any], exc: DataFluxError) -> Response[Any]:
    if exc.status == 401:
        return _sign_in(request, exc.code)
    return _page_error(request, exc.status, exc.code, exc.message)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException):
        return _sign_in(request, "missing_token")
    if isinstance(exc, ValidationException):
        problems = exc.extra if isinstance(exc.extra, list) else []
        first = problems[0] if problems and isinstance(problems[0], dict) else {}
        detail = f"{first.get('key')}: {first.get('message')}" if first else exc.detail
        return _page_error(request, 422, "validation_error", detail)
    if exc.status_code >= 500:
        return _page_error(request, exc.status_code, "internal_error", "an internal error occurred")
    return _page_error(request, exc.status_code, "error", exc.detail)


def _sign_in_required(secret: str | None) -> Callable[[ASGIApp], ASGIApp]:
    """Router middleware: the caller of a page from its bearer header or sign-in cookie (or the open principal)."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def call(scope: Scope, receive: Receive, send: Send) -> None:
            handler = scope.get("route_handler")
            if scope["type"] == "http" and not (handler is not None and handler.opt.get("web_public")):
                if secret is None:
                    scope["user"] = OPEN_PRINCIPAL
                else:
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                    token = bearer_token(headers)
                    if token is None:
                        raise Unauthorized("missing_token", "sign in with a DataFlux token")
                    scope["user"] = decode_token(secret, token)
            await app(scope, receive, send)

        return call

    return middleware


def web_router(settings: Settings) -> Router:
    """The pages, sign-in and static files, with HTML error pages instead of JSON bodies."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC],
        # Pages link `?v=<content hash>`, so a changed file is a new URL and a long max-age is safe.
        cache_control=CacheControlHeader(max_age=7 * 86400, private=True),
        opt={"web_public": True},
        include_in_schema=False,
        name="web:static",
    )
    secret = settings.jwt_secret
    return Router(
        path="/",
        route_handlers=[WebPages, SignIn, static],
        dependencies={"settings_secret": Provide(lambda: secret, sync_to_thread=False)},
        middleware=[_sign_in_required(secret)],
        exception_handlers={DataFluxError: _domain_error, HTTPException: _http_error},
        response_headers=_HEADERS,
        include_in_schema=False,
    )
