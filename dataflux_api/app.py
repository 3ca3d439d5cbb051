"""The DataFlux REST API: a Litestar app whose controllers only call the `DataFlux` service.

Every 4xx/5xx body has one shape (see `dataflux_api.errors`):
`{"error": {"code": "<reason_code>", "message": "...", "field": "<name or null>", "status": <int>}}`.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, BinaryIO, cast

from litestar import Controller, Litestar, Request, Response, delete, get, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, JSONBody, MultipartBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from dataflux_api import schemas, web
from dataflux_api.auth import require_permission
from dataflux_api.errors import DataFluxError, error_body
from dataflux_api.links import API_PREFIX
from dataflux_api.media_http import IMAGE_CACHE, ORIGINAL_CACHE, media_response
from dataflux_api.metrics import CONTENT_TYPE, Metrics
from dataflux_api.policy import PolicyGuard, RequestPolicy
from dataflux_api.query.models import SearchRequest, SearchResponse
from dataflux_api.service import DataFlux, MediaObject
from dataflux_pipelines.objectstore import ObjectStoreUnavailable
from dataflux_pipelines.settings import Settings, get_settings

log = logging.getLogger("dataflux_api")

# Multipart framing and the small form fields ride on top of the file's own size limit.
_FORM_OVERHEAD_BYTES = 1024 * 1024
_JSON_BODY_MAX_BYTES = 1024 * 1024


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    descriptions = {
        400: "Malformed request",
        401: "Missing, expired or invalid bearer token",
        403: "The token lacks the permission this route needs",
        404: "Not found",
        409: "Already exists (the body names the existing id)",
        413: "Upload larger than DATAFLUX_UPLOAD_MAX_BYTES",
        422: "Invalid field (the body names it)",
        503: "A store or component is not available",
    }
    statuses = (401, 403, *statuses)
    return {s: ResponseSpec(schemas.ErrorResponse, description=descriptions[s]) for s in statuses}


# --- error mapping (the one place) --------------------------------------------------------------


def _error_response(
    code: str,
    message: str,
    status: int,
    field: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    headers = {"WWW-Authenticate": 'Bearer realm="dataflux"'} if status == 401 else None
    return Response(error_body(code, message, status, field, extra), status_code=status, headers=headers)


def _domain_error(_: Request[Any, Any, Any], exc: DataFluxError) -> Response[dict[str, Any]]:
    return _error_response(exc.code, exc.message, exc.status, exc.field, exc.extra)


_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        problems = exc.extra if isinstance(exc.extra, list) else []
        first = problems[0] if problems and isinstance(problems[0], dict) else {}
        field = first.get("key") or None
        message = first.get("message") or exc.detail
        # A body missing a field reports the whole body as the key; name the field instead.
        missing = _MISSING_FIELD.search(message)
        if missing:
            field = missing.group(1)
        if field:
            message = f"{field}: {message}"
        return _error_response("validation_error", message, 422, field)
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
        return _error_response("internal_error", "an internal error occurred; see the server log", status)
    if isinstance(exc, NotFoundException):
        return _error_response("not_found", f"no route for {request.method} {request.url.path}", 404)
    if isinstance(exc, MethodNotAllowedException):
        return _error_response("method_not_allowed", exc.detail, 405)
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException):
        return _error_response(_HTTP_CODES[status], exc.detail, status)
    if status == 413:
        is_upload = request.url.path.rstrip("/") == f"{API_PREFIX}/assets"
        return _error_response(
            "payload_too_large",
            "the request body exceeds the size limit of this route",
            413,
            "file" if is_upload else None,
        )
    if status == 400 and exc.detail == "Request Entity Too Large":
        # Litestar's multipart parser hit a limit (a part's headers, or the number of parts), as a 400.
        return _error_response(
            "form_limit_exceeded",
            "a multipart part's headers (for example a file name of thousands of characters) or the "
            "number of parts exceed the upload form's limits",
            400,
            "file",
        )
    return _error_response(_HTTP_CODES.get(status, "bad_request"), exc.detail, status)


def _undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    # Litestar decodes multipart text fields as UTF-8; a file part without a filename counts as text.
    return _error_response(
        "invalid_encoding",
        f"a form field is not UTF-8 text (byte {exc.start}); send files with a filename and text as UTF-8",
        400,
    )


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    if request.url.path.startswith(API_PREFIX):
        return _error_response("invalid_body", "the request body is nested too deeply to read", 400)
    return _unhandled(request, exc)


def _store_unavailable(
    request: Request[Any, Any, Any], exc: ObjectStoreUnavailable
) -> Response[dict[str, Any]]:
    log.error("object store unavailable on %s %s: %s", request.method, request.url.path, exc.message)
    return _error_response(exc.reason.value, f"the object store is not answering: {exc.message}", 503)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response("internal_error", "an internal error occurred; see the server log", 500)


# --- controllers ------------------------------------------------------------------------------


def _stream(
    request: Request[Any, Any, Any], service: DataFlux, media: MediaObject, *, attachment: bool
) -> Response[bytes] | Stream:
    """Range requests (seeking), validators and cache headers: see `dataflux_api.media_http`."""
    cache = ORIGINAL_CACHE if attachment else IMAGE_CACHE
    return media_response(request.headers, service, media, attachment=attachment, cache_control=cache)


Service = NamedDependency[DataFlux]
AssetId = Annotated[str, Parameter(description="Asset id (UUID)")]
SegmentId = Annotated[str, Parameter(description="Segment id (UUID)")]


class AssetController(Controller):
    path = f"{API_PREFIX}/assets"
    tags = ("Assets",)

    @post("/", opt={"permission": "assets:write"}, responses=_errors(400, 409, 413, 422), status_code=201)
    async def upload_asset(
        self, service: Service, data: MultipartBody[schemas.UploadForm]
    ) -> Response[schemas.UploadReceipt]:
        """Upload a file (multipart field `file`); it is streamed to disk, hashed and queued for processing."""
        try:
            receipt = await sync_to_thread(
                service.upload,
                # A SpooledTemporaryFile is an IO[bytes], not a BinaryIO in typeshed; upload only reads it.
                cast(BinaryIO, data.file.file),
                data.file.filename,
                context=data.context,
                priority=data.priority,
                collection_id=data.collection_id,
            )
        finally:
            await data.file.close()
        return Response(
            schemas.UploadReceipt(**receipt), status_code=201, headers={"Location": receipt["url"]}
        )

    @get("/", opt={"permission": "assets:read"}, sync_to_thread=True, responses=_errors(422))
    def list_assets(
        self,
        service: Service,
        page: Annotated[int, Parameter(ge=1, description="1-based page number")] = 1,
        limit: Annotated[
            int, Parameter(ge=1, description="Page size (at least 1); values above 100 are clamped to 100")
        ] = 20,
        status: Annotated[
            str | None, Parameter(description="queued, processing, completed or failed")
        ] = None,
        mime_type: Annotated[str | None, Parameter(description="Exact MIME type, e.g. video/mp4")] = None,
        media_type: Annotated[str | None, Parameter(description="video, image, audio or document")] = None,
        collection_id: Annotated[str | None, Parameter(description="Collection id (UUID)")] = None,
    ) -> schemas.AssetList:
        """List assets, newest first, with pagination and filters."""
        out = service.list_assets(
            page=page,
            limit=limit,
            status=status,
            mime_type=mime_type,
            media_type=media_type,
            collection_id=collection_id,
        )
        return schemas.AssetList(
            assets=[schemas.Asset(**_fields(schemas.Asset, a)) for a in out["assets"]],
            pagination=schemas.Pagination(**out["pagination"]),
        )

    @get(
        "/{asset_id:str}", opt={"permission": "assets:read"}, sync_to_thread=True, responses=_errors(404, 422)
    )
    def get_asset(
        self,
        service: Service,
        asset_id: FromPath[AssetId],
        segment_offset: Annotated[int, Parameter(ge=0, description="First segment of the page")] = 0,
        segment_limit: Annotated[int, Parameter(ge=1, le=1000, description="Segments per page")] = 200,
    ) -> schemas.AssetDetail:
        """One asset with a page of its segments (in order) and thumbnail/keyframe URLs."""
        detail = service.get_asset(asset_id, segment_offset=segment_offset, segment_limit=segment_limit)
        fields = _fields(schemas.AssetDetail, detail)
        fields["segments"] = [schemas.Segment(**_fields(schemas.Segment, s)) for s in detail["segments"]]
        return schemas.AssetDetail(**fields)

    @delete(
        "/{asset_id:str}",
        opt={"permission": "assets:write"},
        sync_to_thread=True,
        status_code=HTTP_204_NO_CONTENT,
        responses=_errors(404, 422),
    )
    def delete_asset(self, service: Service, asset_id: FromPath[AssetId]) -> None:
        """Delete an asset from every store: objects, catalog, segments, vectors and graph."""
        service.delete_asset(asset_id)

    @post(
        "/{asset_id:str}/analyze",
        opt={"permission": "assets:write"},
        sync_to_thread=True,
        status_code=HTTP_202_ACCEPTED,
        request_max_body_size=_JSON_BODY_MAX_BYTES,
        responses=_errors(404, 422),
    )
    def analyze_asset(
        self,
        service: Service,
        asset_id: FromPath[AssetId],
        data: JSONBody[schemas.AnalyzeRequest | None] = None,
    ) -> schemas.AnalyzeReceipt:
        """Request a new processing run of this asset's partition (picked up by the landing sensor)."""
        request = data or schemas.AnalyzeRequest()
        return schemas.AnalyzeReceipt(**service.reanalyze(asset_id, request.force, request.priority))

    @get(
        "/{asset_id:str}/download",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        responses=_errors(404, 422),
    )
    def download_asset(
        self, request: Request[Any, Any, Any], service: Service, asset_id: FromPath[AssetId]
    ) -> Response[bytes] | Stream:
        """Stream the original file as uploaded."""
        return _stream(request, service, service.asset_media(asset_id, "original"), attachment=True)

    @get(
        "/{asset_id:str}/thumbnail",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        responses=_errors(404, 422),
    )
    def asset_thumbnail(
        self, request: Request[Any, Any, Any], service: Service, asset_id: FromPath[AssetId]
    ) -> Response[bytes] | Stream:
        """The asset's thumbnail image."""
        return _stream(request, service, service.asset_media(asset_id, "thumbnail"), attachment=False)


class SegmentController(Controller):
    path = f"{API_PREFIX}/segments"
    tags = ("Segments",)

    @get(
        "/{segment_id:str}",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        responses=_errors(404, 422),
    )
    def get_segment(self, service: Service, segment_id: FromPath[SegmentId]) -> schemas.Segment:
        """One segment with its features."""
        return schemas.Segment(**_fields(schemas.Segment, service.get_segment(segment_id)))

    @get(
        "/{segment_id:str}/thumbnail",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        responses=_errors(404, 422),
    )
    def segment_thumbnail(
        self, request: Request[Any, Any, Any], service: Service, segment_id: FromPath[SegmentId]
    ) -> Response[bytes] | Stream:
        """The segment's thumbnail image."""
        return _stream(request, service, service.segment_media(segment_id, "thumbnail"), attachment=False)

    @get(
        "/{segment_id:str}/keyframe",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        responses=_errors(404, 422),
    )
    def segment_keyframe(
        self, request: Request[Any, Any, Any], service: Service, segment_id: FromPath[SegmentId]
    ) -> Response[bytes] | Stream:
        """The segment's full-size keyframe image."""
        return _stream(request, service, service.segment_media(segment_id, "keyframe"), attachment=False)


class SearchController(Controller):
    path = API_PREFIX
    tags = ("Search",)

    @post(
        "/search",
        opt={"permission": "search"},
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        responses=_errors(422, 503),
    )
    def search(self, service: Service, data: JSONBody[SearchRequest]) -> SearchResponse:
        """Hybrid search (vectors, full text, graph) over every segment; results grouped by asset."""
        return service.search(data)

    @post(
        "/similar",
        opt={"permission": "search"},
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        responses=_errors(404, 422, 503),
    )
    def similar(self, service: Service, data: JSONBody[schemas.SimilarRequest]) -> SearchResponse:
        """Assets and segments similar to an asset or segment."""
        return service.similar(data.entity_id, data.threshold, data.limit, data.media_types or None)


class LibraryController(Controller):
    path = API_PREFIX

    @get("/collections", opt={"permission": "assets:read"}, sync_to_thread=True, tags=["Collections"])
    def list_collections(self, service: Service) -> list[schemas.Collection]:
        """Every collection with its asset count."""
        return [schemas.Collection(**c) for c in service.collections()]

    @post(
        "/collections",
        opt={"permission": "assets:write"},
        sync_to_thread=True,
        tags=["Collections"],
        responses=_errors(409, 422),
    )
    def create_collection(
        self, service: Service, data: JSONBody[schemas.CollectionCreate]
    ) -> schemas.Collection:
        """Create a collection; a second one with the same name is a conflict."""
        return schemas.Collection(
            **service.create_collection(data.name, data.description, data.auto_generated)
        )

    @post(
        "/feedback",
        opt={"permission": "search"},
        sync_to_thread=True,
        tags=["System"],
        responses=_errors(404, 422),
    )
    def feedback(self, service: Service, data: JSONBody[schemas.FeedbackCreate]) -> schemas.FeedbackReceipt:
        """Record relevance/accuracy/quality feedback on an asset, segment or collection."""
        row = service.feedback(data.type, data.entity_id, data.feedback, data.details, data.query)
        return schemas.FeedbackReceipt(
            id=row["id"],
            type=row["type"],
            entity_id=row["entity_id"],
            feedback=row["feedback"],
            created_at=row["created_at"],
        )

    @get(
        "/relationships",
        opt={"permission": "assets:read"},
        sync_to_thread=True,
        tags=["Graph"],
        responses=_errors(404, 422, 503),
    )
    def relationships(
        self,
        service: Service,
        entity_id: Annotated[str, Parameter(description="Asset, segment, collection or concept id")],
        depth: Annotated[int, Parameter(description="Hops, 1 to 3")] = 1,
        types: Annotated[
            list[str] | None, Parameter(description="Relationship types (repeat or comma-separate)")
        ] = None,
    ) -> dict[str, Any]:
        """Neighbours of an entity in the media graph."""
        wanted = [t.strip() for value in types or [] for t in value.split(",") if t.strip()]
        return service.relationships(entity_id, depth, wanted)

    @get("/stats", opt={"permission": "assets:read"}, sync_to_thread=True, tags=["System"])
    def stats(self, service: Service) -> dict[str, Any]:
        """Library statistics."""
        return service.stats()


@get("/health", sync_to_thread=True, tags=["System"])
def health(service: Service, state: State) -> dict[str, Any]:
    """Stores, models, profile, device and every reason the service runs degraded."""
    return service.health(auth_mode=state.auth_mode)


@get("/metrics", opt={"permission": "admin"}, sync_to_thread=True, tags=["System"])
def metrics(state: State) -> Response[bytes]:
    """Prometheus metrics (requests, latency, assets and segments, queue depth)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _fields(struct: type, row: dict[str, Any]) -> dict[str, Any]:
    names = struct.__struct_fields__  # type: ignore[attr-defined]
    return {k: row[k] for k in names if k in row and row[k] is not None}


# --- the factory ------------------------------------------------------------------------------


# Public without a token: the OpenAPI document (it describes the API and holds no data) and the
# health probe load balancers call (stores and models, no library content).
PUBLIC_PATHS = ("^/schema", "^/health$", *web.PUBLIC_PATHS)  # web pages check the token themselves


def create_app(settings: Settings | None = None, *, service: DataFlux | None = None) -> Litestar:
    """The REST app; refuses a non-loopback bind address without a JWT secret."""
    settings = settings or (service.settings if service is not None else get_settings())
    # The OpenAPI document describes the API and holds no data: it stays readable without a token.
    policy = RequestPolicy.for_server(settings, settings.api_host, public_paths=PUBLIC_PATHS)
    if policy.secret is None:
        log.warning(
            "DataFlux API runs OPEN on %s: no DATAFLUX_JWT_SECRET, so every local request is allowed. "
            "Set a secret before exposing it.",
            settings.api_host,
        )
    service = service or DataFlux(settings)
    metrics_ = Metrics(service)

    # The upload route's body limit follows the settings, so the controller is specialised per app.
    assets = type(
        "AssetController",
        (AssetController,),
        {"request_max_body_size": settings.upload_max_bytes + _FORM_OVERHEAD_BYTES},
    )
    openapi = OpenAPIConfig(
        title="DataFlux API",
        version="1.0.0",
        description=(
            "Self-hosted, AI-native media database. Errors: "
            '`{"error": {"code", "message", "field", "status"}}`. '
            "Permissions: assets:read, assets:write, search, admin."
        ),
        path="/schema",
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
            }
        ),
        security=[{"BearerToken": []}],
    )
    app = Litestar(
        route_handlers=[
            assets,
            SegmentController,
            SearchController,
            LibraryController,
            health,
            metrics,
            web.web_router(settings),  # the web UI at / (dataflux_api.web)
        ],
        template_config=web.template_config(),
        dependencies={"service": Provide(lambda: service, sync_to_thread=False)},
        guards=[require_permission],
        middleware=[
            metrics_.middleware,
            DefineMiddleware(PolicyGuard, policy=policy),  # type: ignore[arg-type]
        ],
        exception_handlers={
            DataFluxError: _domain_error,
            HTTPException: _http_error,
            UnicodeDecodeError: _undecodable,
            RecursionError: _too_deep,
            ObjectStoreUnavailable: _store_unavailable,
            Exception: _unhandled,
        },
        openapi_config=openapi,
        request_max_body_size=_JSON_BODY_MAX_BYTES,
        state=State({"auth_mode": policy.auth_mode, "policy": policy, "metrics": metrics_}),
        signature_namespace={
            "DataFlux": DataFlux,
            "SearchRequest": SearchRequest,
            "SearchResponse": SearchResponse,
        },
    )
    return app
