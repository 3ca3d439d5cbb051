"""Malformed requests, forged tokens and path escapes: every one gets a 4xx with a reason code (never a
2xx it should not, never a 5xx), on REST and on MCP, and nothing is landed by a refused request."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from api_support import (
    MCP_HEADERS,
    MCP_INIT,
    SECRET,
    api_client,
    bearer,
    make_settings,
    png_bytes,
    raw_token,
    token,
)
from litestar.testing import TestClient
from mcp import Client
from tally import TALLY

from dataflux_api.mcp_server import build_server, http_app
from dataflux_api.service import DataFlux

pytestmark = pytest.mark.reliability

JSON = {"Content-Type": "application/json"}
NIL = "00000000-0000-4000-8000-000000000000"


def _refused(response, *, statuses: range = range(400, 500)) -> str | None:
    """Counts one hostile request; returns a problem sentence or None when it was refused properly."""
    TALLY.add("inputs_tried")
    if response.status_code >= 500:
        TALLY.add("server_errors_5xx")
        return f"{response.request.method} {response.request.url.path}: {response.status_code}"
    if response.status_code not in statuses:
        return f"{response.request.method} {response.request.url.path}: {response.status_code}, not refused"
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"{response.request.method} {response.request.url.path}: no reason code in {response.text[:200]!r}"
    TALLY.add("refused_with_reason")
    return None if code else "empty reason code"


MALFORMED: list[tuple[str, str, dict]] = [
    ("post", "/api/v1/search", {"content": b"{not json", "headers": JSON}),
    ("post", "/api/v1/search", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": JSON}),
    ("post", "/api/v1/search", {"json": {"query": 42}}),
    ("post", "/api/v1/search", {"json": {"query": "x\x00y"}}),
    ("post", "/api/v1/search", {"json": {"query": "x" * 100_000}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "limit": -1}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "offset": -1}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "offset": 10**12}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "filters": {"created_after": "0000-01-01"}}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "filters": {"created_after": "10000-01-01"}}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "filters": {"status": "'; DROP TABLE assets; --"}}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "min_score": "NaN"}}),
    ("post", "/api/v1/search", {"json": {"query": "x", "media_types": ["video' OR 1=1 --"]}}),
    ("post", "/api/v1/search", {"content": b'{"query": "\xff\xfe"}', "headers": JSON}),
    ("post", "/api/v1/search", {"content": b"x" * (2 << 20), "headers": JSON}),
    ("post", "/api/v1/assets", {"files": {"file": ("", b"abc", "image/png")}}),
    ("post", "/api/v1/assets", {"files": {"file": ("a.png", b"", "image/png")}}),
    ("post", "/api/v1/assets", {"files": {"other": ("a.png", png_bytes(), "image/png")}}),
    (
        "post",
        "/api/v1/assets",
        {"files": {"file": ("a.png", png_bytes(), "image/png")}, "data": {"priority": "99"}},
    ),
    (
        "post",
        "/api/v1/assets",
        {"files": {"file": ("a.png", png_bytes(), "image/png")}, "data": {"collection_id": "../x"}},
    ),
    (
        "post",
        "/api/v1/assets",
        {
            "content": b'--b\r\nContent-Disposition: form-data; name="context"\r\n\r\n\xff\xfe\r\n--b--\r\n',
            "headers": {"Content-Type": "multipart/form-data; boundary=b"},
        },
    ),
    (
        "post",
        "/api/v1/assets",
        {"content": b"--b\r\ngarbage", "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
    ),
    ("post", "/api/v1/assets", {"json": {"file": "not multipart"}}),
    ("get", "/api/v1/assets", {"params": {"limit": "-1"}}),
    ("get", "/api/v1/assets", {"params": {"page": "0"}}),
    ("get", "/api/v1/assets", {"params": {"status": "nonsense"}}),
    ("get", "/api/v1/assets", {"params": {"limit": "1e309"}}),
    ("get", "/api/v1/assets/not-a-uuid", {}),
    ("get", f"/api/v1/assets/{NIL}", {}),
    ("get", f"/api/v1/assets/{NIL}", {"params": {"segment_limit": "0"}}),
    ("get", "/api/v1/assets/..%2F..%2Fetc%2Fpasswd", {}),
    ("get", "/api/v1/assets/%00", {}),
    ("get", f"/api/v1/assets/{NIL}/original", {}),
    ("get", f"/api/v1/segments/{NIL}/keyframe", {}),
    ("delete", "/api/v1/assets/../../etc/passwd", {}),
    ("post", f"/api/v1/assets/{NIL}/analyze", {"json": {"priority": 0}}),
    ("post", "/api/v1/collections", {"json": {"name": ""}}),
    ("post", "/api/v1/feedback", {"json": {"asset_id": "x", "rating": 99}}),
    ("put", "/api/v1/search", {"json": {"query": "x"}}),
    ("get", "/api/v1/" + "a/" * 3000, {}),
]


def test_malformed_requests_get_a_reason_code_and_never_a_5xx(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    problems = []
    with api_client(settings) as client:
        for method, path, kwargs in MALFORMED:
            response = (
                getattr(client, method)(path, **kwargs)
                if method in ("get", "delete") or kwargs
                else getattr(client, method)(path)
            )
            problem = _refused(response)
            if problem:
                problems.append(f"{problem} ({str(kwargs)[:100]})")
        assert client.get("/api/v1/assets").json()["pagination"]["total"] == 0  # nothing landed
    assert not problems, "\n".join(problems)


def _bad_tokens() -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "permissions": ["assets:read", "assets:write", "search"],
        "iat": now,
        "exp": now + 600,
    }
    return {
        "forged signature": raw_token(claims, key="not-the-secret-" + "x" * 50),
        "expired": token(["assets:read", "search"], ttl=-60),
        "alg none": raw_token(claims, key="", algorithm="none"),
        "garbage": "abc.def.ghi",
        "not a jwt": "Bearer-me-please",
        "future iat, no exp": raw_token(
            {k: v for k, v in claims.items() if k != "exp"} | {"iat": now + 10**6}
        ),
        "tampered payload": _tamper(token(["search"])),
    }


def _tamper(jwt: str) -> str:
    import base64
    import json

    head, body, sig = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["permissions"] = ["assets:write", "assets:read", "search"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def test_forged_expired_none_and_wrong_permission_tokens_never_get_a_2xx_on_rest_or_mcp(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, jwt_secret=SECRET)
    problems = []
    with api_client(settings) as client:
        for name, bad in _bad_tokens().items():
            for method, path, kwargs in (
                ("get", "/api/v1/assets", {}),
                ("post", "/api/v1/search", {"json": {"query": "x"}}),
                ("post", "/api/v1/assets", {"files": {"file": ("a.png", png_bytes(), "image/png")}}),
            ):
                response = getattr(client, method)(path, headers={"Authorization": f"Bearer {bad}"}, **kwargs)
                if (problem := _refused(response, statuses=range(401, 402))) is not None:
                    problems.append(f"REST {name}: {problem}")
        # A valid token without the permission: 403 with the missing permission named.
        for method, path, kwargs, perms in (
            ("post", "/api/v1/assets", {"files": {"file": ("a.png", png_bytes(), "image/png")}}, ["search"]),
            ("delete", f"/api/v1/assets/{NIL}", {}, ["search", "assets:read"]),
            ("get", "/api/v1/assets", {}, ["search"]),
        ):
            response = getattr(client, method)(path, headers=bearer(perms), **kwargs)
            if (problem := _refused(response, statuses=range(403, 404))) is not None:
                problems.append(f"REST wrong permission: {problem}")
        assert (
            client.get("/api/v1/assets", headers=bearer(["assets:read"])).json()["pagination"]["total"] == 0
        )

    app = http_app(build_server(DataFlux(settings)), settings, "127.0.0.1")
    with TestClient(app=app, base_url="http://127.0.0.1:8004") as mcp:
        for name, bad in {**_bad_tokens(), "no token": ""}.items():
            headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {bad}"} if bad else {})}
            if (
                problem := _refused(
                    mcp.post("/mcp", json=MCP_INIT, headers=headers), statuses=range(401, 402)
                )
            ) is not None:
                problems.append(f"MCP {name}: {problem}")
    assert not problems, "\n".join(problems)


ESCAPES = [
    "../outside.md",
    "../../../../etc/passwd",
    "/etc/passwd",
    "~/.bashrc",
    "link-out.md",  # a symlink inside the root pointing outside it
    "sub/../../outside.md",
    "....//outside.md",
    "notes.md\x00.png",
    "%2e%2e/outside.md",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x.md",
    "sub",  # a folder
    "a" * 5000,
    "",
]


def test_path_escapes_over_mcp_are_refused_and_queue_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    root = settings.mcp_allowed_roots[0]
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside.md"
    outside.write_text("# Secret\n\n- not for agents\n- really\n")
    os.symlink(outside, root / "link-out.md")

    async def attempts() -> list[tuple[str, bool, str]]:
        async with Client(build_server(DataFlux(settings))) as client:
            out = []
            for path in ESCAPES:
                result = await client.call_tool("dataflux_analyze", {"file_path": path})
                out.append((path, result.is_error, result.content[0].text if result.content else ""))
            return out

    problems = []
    for path, is_error, text in asyncio.run(attempts()):
        TALLY.add("inputs_tried")
        # The SDK prefixes tool errors; the reason code follows (or the SDK's own argument check).
        code = text.removeprefix("Error executing tool dataflux_analyze: ").split(":", 1)[0].strip()
        if code.startswith("1 validation error"):
            code = "invalid_arguments"
        if not is_error or not code.replace("_", "").isalpha():
            problems.append(
                f"{path[:40]!r}: {'accepted' if not is_error else 'no reason code'}: {text[:160]}"
            )
        else:
            TALLY.add("refused_with_reason")
    assert not problems, "\n".join(problems)
    with api_client(settings) as client:
        assert client.get("/api/v1/assets").json()["pagination"]["total"] == 0
