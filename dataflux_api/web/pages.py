"""The web UI's pages: server-rendered from the same `DataFlux` service the REST API calls.

Reads happen here; every change (upload, feedback, re-analyse) is sent by the page's script to the
REST API under /api/v1 with the bearer token, so the UI has no write path of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from dataflux_api.auth import OPEN_PRINCIPAL, Principal, decode_token
from dataflux_api.errors import DataFluxError, Invalid, Unauthorized
from dataflux_api.policy import TOKEN_COOKIE, bearer_token
from dataflux_api.query.models import MAX_SEARCH_LIMIT, SearchFilters, SearchRequest
from dataflux_api.service import DataFlux
from dataflux_api.web import view
from dataflux_pipelines.records import MediaType, Status

log = logging.getLogger(__name__)

MEDIA_TYPES = [m.value for m in MediaType]
STATUSES = [s.value for s in Status]
# The static files' content hash: their URLs change when they do (see the static router's max-age).
STATIC_VERSION = hashlib.sha256(
    b"".join(p.read_bytes() for p in sorted((Path(__file__).parent / "static").iterdir()) if p.is_file())
).hexdigest()[:12]
SIMILAR_LIMIT = 6
DUPLICATE_SPANS = 6


def page_context(request: Request[Any, Any, Any], state: State, **values: Any) -> dict[str, Any]:
    """What every page's layout needs: who is signed in, what they may do, the token the script sends."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        principal = OPEN_PRINCIPAL if state.auth_mode == "open" else None
    try:
        token = bearer_token(request.headers) if principal is not None else None
    except DataFluxError:
        token = None
    return {
        "principal": principal,
        "auth_mode": state.auth_mode,
        "can_write": bool(principal and principal.allows("assets:write")),
        "can_search": bool(principal and principal.allows("search")),
        # The script needs the token for the API's writes (cookies authenticate reads only).
        "api_token": token if state.auth_mode == "jwt" and isinstance(token, str) else "",
        "path": request.url.path,
        "v": view,
        "static_version": STATIC_VERSION,
        **values,
    }


def _collections(service: DataFlux) -> list[dict[str, Any]]:
    try:
        return service.collections()
    except DataFluxError as exc:
        log.warning("collections unavailable for the page: %s", exc)
        return []


class WebPages(Controller):
    """Search, asset and library pages."""

    path = "/"
    include_in_schema = False

    @get("/", opt={"permission": "search"}, sync_to_thread=True, name="web:search")
    def search_page(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[DataFlux],
        state: State,
        q: FromQuery[str] = "",
        media_types: Annotated[list[str] | None, QueryParameter(name="type")] = None,
        collection: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        before: FromQuery[str | None] = None,
        weak: FromQuery[bool] = False,
        page: Annotated[int, QueryParameter(ge=1, le=4)] = 1,
    ) -> Template:
        """Search with the query in the URL; without a query, the newest assets."""
        types = [t for t in media_types or [] if t]
        params = {
            "q": q,
            "type": types,
            "collection": collection or None,
            "after": after or None,
            "before": before or None,
            "weak": weak,
        }
        ctx: dict[str, Any] = {
            "q": q,
            "params": params,
            "types": types,
            "collection": collection or "",
            "after": after or "",
            "before": before or "",
            "weak": weak,
            "page": page,
            "media_types": MEDIA_TYPES,
            "collections": _collections(service),
            "error": None,
            "response": None,
            "results": [],
            "weak_count": 0,
            "has_next": False,
            "recent": [],
        }
        status = 200
        if not q.strip():
            ctx["recent"] = service.list_assets(limit=12)["assets"]
            return Template("search.html", context=page_context(request, state, **ctx))
        try:
            filters = SearchFilters(
                collection_id=collection or None,
                created_after=view.parse_day(after, "after"),
                created_before=view.parse_day(before, "before", end=True),
            )
            per_page = view.SEARCH_PAGE_SIZE
            # Weak hits are asked for too (min_score 0) and split at the calibrated relevance floor,
            # so the page can say how many it hides.
            fetch = min(MAX_SEARCH_LIMIT, page * per_page + 1)
            response = service.search(
                SearchRequest(
                    query=q, media_types=types, filters=filters, limit=fetch, offset=0, min_score=0.0
                )
            )
            strong, weak_hits = view.split_weak(response.results)
            shown = response.results if weak else strong
            ctx.update(
                response=response,
                results=shown[(page - 1) * per_page : page * per_page],
                weak_count=len(weak_hits),
                has_next=len(shown) > page * per_page and page * per_page < MAX_SEARCH_LIMIT - 1,
                more_than_fetched=response.total > len(response.results),
            )
        except ValueError as exc:  # a date the browser let through that is not one
            ctx["error"] = {"code": "invalid_date", "message": str(exc)}
            status = 422
        except DataFluxError as exc:
            ctx["error"] = {"code": exc.code, "message": exc.message}
            status = exc.status
        return Template("search.html", context=page_context(request, state, **ctx), status_code=status)

    @get("/assets/{asset_id:str}", opt={"permission": "assets:read"}, sync_to_thread=True, name="web:asset")
    def asset_page(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[DataFlux],
        state: State,
        asset_id: FromPath[str],
        t: Annotated[float | None, QueryParameter(ge=0)] = None,
    ) -> Template:
        """Metadata and status, the player at `t`, segments, transcript, text, labels, similar and duplicates."""
        asset = service.get_asset(asset_id)
        ctx = page_context(request, state)
        sections = view.classify_segments(asset)
        by_id = {s["id"]: s for s in asset["segments"]}
        notes: list[str] = []
        similar: list[Any] = []
        if asset.get("status") == "completed":
            if ctx["can_search"]:
                try:
                    similar = service.similar(asset["id"], limit=SIMILAR_LIMIT).results
                except DataFluxError as exc:
                    notes.append(f"Similar assets are unavailable: {exc.message}")
            else:
                notes.append("Similar assets need the search permission.")
        duplicates, collections = self._graph_neighbours(service, asset, by_id, notes)
        names = {c["id"]: c for c in _collections(service)}
        collections = {cid: names[cid]["name"] if cid in names else n for cid, n in collections.items()}
        if asset.get("collection_id") and asset["collection_id"] not in collections:
            known = names.get(asset["collection_id"])
            collections[asset["collection_id"]] = known["name"] if known else asset["collection_id"]
        ctx.update(
            asset=asset,
            start=t,
            sections=sections,
            concepts=view.concept_summary(asset["segments"]),
            facts=view.metadata_facts(asset),
            similar=similar,
            duplicates=duplicates,
            collections=collections,
            notes=notes,
            title=asset.get("filename") or asset["id"],
        )
        return Template("asset.html", context=ctx)

    @staticmethod
    def _graph_neighbours(
        service: DataFlux, asset: dict[str, Any], own: dict[str, dict[str, Any]], notes: list[str]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Duplicates (with the spans they share) and collections, from the published media graph."""
        try:
            graph = service.relationships(asset["id"], 1, ["DUPLICATE_OF", "IN_COLLECTION"])
        except DataFluxError as exc:
            if exc.code not in ("entity_not_found", "not_found"):
                notes.append(f"Duplicates and collections from the media graph: {exc.message}")
            return [], {}
        nodes = {n["id"]: n.get("properties") or {} for n in graph["nodes"]}
        collections = {
            e["target"]: nodes.get(e["target"], {}).get("name") or e["target"]
            for e in graph["edges"]
            if e["type"] == "IN_COLLECTION"
        }
        duplicates = []
        for edge in graph["edges"]:
            if edge["type"] != "DUPLICATE_OF":
                continue
            other = edge["target"] if edge["source"] == asset["id"] else edge["source"]
            node = nodes.get(other, {})
            props = edge.get("properties") or {}
            spans = []
            for pair in (props.get("segment_pairs") or [])[:DUPLICATE_SPANS]:
                src, _, dst = pair.partition(":")
                mine, theirs = (src, dst) if edge["source"] == asset["id"] else (dst, src)
                try:
                    their_seg = service.get_segment(theirs)
                except DataFluxError:
                    continue
                spans.append({"mine": own.get(mine), "theirs": their_seg})
            duplicates.append(
                {
                    "id": other,
                    "filename": node.get("filename") or other,
                    "media_type": node.get("media_type"),
                    "score": props.get("score"),
                    "shared": props.get("shared_segments"),
                    "spans": spans,
                }
            )
        return duplicates, collections

    @get("/library", opt={"permission": "assets:read"}, sync_to_thread=True, name="web:library")
    def library_page(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[DataFlux],
        state: State,
        status: FromQuery[str | None] = None,
        media_type: Annotated[str | None, QueryParameter(name="type")] = None,
        collection: FromQuery[str | None] = None,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
    ) -> Template:
        """Every asset, newest first, paged, by status, media type and collection; the upload area for writers."""
        listing = service.list_assets(
            page=page,
            limit=view.LIBRARY_PAGE_SIZE,
            status=status or None,
            media_type=media_type or None,
            collection_id=collection or None,
        )
        collections = _collections(service)
        stats = service.stats()
        ctx = page_context(
            request,
            state,
            assets=listing["assets"],
            pagination=listing["pagination"],
            status=status or "",
            media_type=media_type or "",
            statuses=STATUSES,
            media_types=MEDIA_TYPES,
            stats=stats,
            params={"status": status or None, "type": media_type or None, "collection": collection or None},
            collections=collections,
            collection=next((c for c in collections if c["id"] == collection), None),
            title="Library",
        )
        return Template("library.html", context=ctx)


@dataclass
class SignInForm:
    token: str = ""
    next: str = "/"


_REASONS = {
    "missing_token": "Sign in with a DataFlux token to see this library.",
    "token_expired": "Your token has expired. Sign in with a new one.",
    "invalid_token": "That token is not valid for this DataFlux.",
}


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """A form post from this site (browsers send Origin on POST); anything else is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser form post from another page (curl, tests)
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


class SignIn(Controller):
    """Sign in with a bearer token (stored as a SameSite=Strict, HttpOnly cookie) and sign out."""

    path = "/"
    include_in_schema = False

    @get("/login", sync_to_thread=False, name="web:login", opt={"web_public": True})
    def login_page(
        self,
        request: Request[Any, Any, Any],
        state: State,
        reason: FromQuery[str | None] = None,
        next: FromQuery[str] = "/",
    ) -> Template | Redirect:
        if state.auth_mode == "open":
            return Redirect(view.safe_next(next))
        ctx = page_context(
            request, state, message=_REASONS.get(reason or ""), next=view.safe_next(next), title="Sign in"
        )
        ctx["principal"] = None
        return Template("login.html", context=ctx)

    @post("/login", sync_to_thread=False, status_code=303, name="web:login-post", opt={"web_public": True})
    def login(
        self,
        request: Request[Any, Any, Any],
        state: State,
        settings_secret: NamedDependency[str | None],
        data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        target = view.safe_next(data.next)
        if state.auth_mode == "open":
            return Redirect(target)
        token = data.token.strip()
        message = None
        expires: dt.datetime | None = None
        if not _same_origin(request):
            message = "Sign-in from another site was refused."
        elif not token:
            message = "Paste a token first."
        else:
            try:
                decode_token(settings_secret or "", token)
                # Verified just above (it requires `exp`); read again only for the cookie's lifetime.
                exp = jwt.decode(token, options={"verify_signature": False})["exp"]
                expires = dt.datetime.fromtimestamp(int(exp), dt.UTC)
            except Unauthorized as exc:
                message = f"{exc.message} ({exc.code})."
        if message is not None:
            ctx = page_context(request, state, message=message, next=target, title="Sign in")
            ctx["principal"] = None
            return Template("login.html", context=ctx, status_code=401)
        max_age = max(1, int((expires - dt.datetime.now(dt.UTC)).total_seconds())) if expires else None
        cookie = Cookie(
            key=TOKEN_COOKIE,
            value=token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=max_age,
            path="/",
        )
        return Redirect(target, cookies=[cookie], status_code=303)

    @post("/logout", sync_to_thread=False, status_code=303, name="web:logout", opt={"web_public": True})
    def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        if not _same_origin(request):
            raise Invalid("cross_site", "sign-out from another site was refused")
        gone = Cookie(key=TOKEN_COOKIE, value="", max_age=0, path="/", httponly=True, samesite="strict")
        return Redirect("/login", cookies=[gone], status_code=303)
