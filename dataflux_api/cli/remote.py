"""A running DataFlux API answering for the CLI: its models are loaded and warm, a new process's are not.

`dataflux search` asks the API at `DATAFLUX_API_URL` (default the local API port) when one answers for
the same library, and only otherwise loads the models itself (seconds of start-up per query).
Standard-library HTTP only: importing an HTTP client would cost this process more than the request.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dataflux_pipelines.settings import Settings

# A warm API answers /health in milliseconds and nothing listening refuses at once; the timeout
# bounds a port that accepts and never answers (and an API still opening its stores).
HEALTH_TIMEOUT_S = 10.0
SEARCH_TIMEOUT_S = 60.0


class ApiError(Exception):
    """The API answered with an error; `code` and `message` are its reason code and sentence."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class NoApi:
    """Why no running API can answer (said on stderr before searching in-process)."""

    reason: str


def api_url(settings: Settings) -> str:
    """`DATAFLUX_API_URL`, else the local API on `DATAFLUX_API_PORT` (a wildcard bind is reached on loopback)."""
    if settings.api_url:
        return settings.api_url
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def _request(
    url: str, token: str | None, body: dict[str, Any] | None, timeout: float
) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read())
        except ValueError:
            payload = {}
        return exc.code, payload


def _error(status: int, payload: dict[str, Any]) -> ApiError:
    found = payload.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    return ApiError(
        str(error.get("code") or f"http_{status}"), str(error.get("message") or "no message"), status
    )


def search(settings: Settings, request: dict[str, Any]) -> dict[str, Any] | NoApi:
    """The running API's answer to a search request, or why none can give it.

    Raises `ApiError` when the API serving this library refused the request (a bad filter, a token
    without the `search` permission): searching in-process would hide a setting the user must fix.
    """
    base = api_url(settings)
    try:
        status, health = _request(f"{base}/health", None, None, HEALTH_TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return NoApi(f"no DataFlux API answered at {base} ({reason})")
    lance = (((health.get("stores") or {}).get("lance")) or {}).get("uri") if status == 200 else None
    if status != 200 or lance is None:
        return NoApi(f"{base} answered /health with HTTP {status}, not as a DataFlux API")
    if lance != settings.lance_uri:
        return NoApi(f"the API at {base} serves another library ({lance}, not {settings.lance_uri})")
    status, payload = _request(f"{base}/api/v1/search", settings.api_token, request, SEARCH_TIMEOUT_S)
    if status != 200:
        error = _error(status, payload)
        if status in (401, 403):
            hint = "set DATAFLUX_API_TOKEN to a token with the search permission, or pass --local"
            raise ApiError(error.code, f"{error.message} ({base}; {hint})", status)
        raise error
    return payload
