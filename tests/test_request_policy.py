"""One request policy for REST and MCP: foreign hosts and origins are refused, cross-site writes too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import SECRET, bearer, make_settings, png_bytes
from litestar.testing import TestClient

from dataflux_api.app import create_app
from dataflux_api.policy import RequestPolicy
from dataflux_pipelines.settings import Settings

LOCAL = "http://127.0.0.1:8000"
EVIL = {"Origin": "https://evil.example"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)  # open mode: no secret, loopback


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app=create_app(settings), base_url=LOCAL, raise_server_exceptions=False) as c:
        yield c


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_a_foreign_origin_cannot_upload_search_list_or_delete_in_open_mode(client: TestClient) -> None:
    upload = client.post("/api/v1/assets", files={"file": ("a.png", png_bytes(), "image/png")}, headers=EVIL)
    assert upload.status_code == 403 and _code(upload) == "origin_not_allowed"
    search = client.post(
        "/api/v1/search", content=b'{"query": "x"}', headers={**EVIL, "Content-Type": "text/plain"}
    )
    assert search.status_code == 403 and _code(search) == "origin_not_allowed"
    listing = client.get("/api/v1/assets", headers=EVIL)
    assert listing.status_code == 403
    delete = client.delete("/api/v1/assets/00000000-0000-4000-8000-000000000000", headers=EVIL)
    assert delete.status_code == 403
    # Nothing was landed by the refused upload.
    assert client.get("/api/v1/assets").json()["pagination"]["total"] == 0


def test_a_rebinding_host_is_refused_and_the_servers_own_origin_is_allowed(client: TestClient) -> None:
    rebound = client.get("/api/v1/assets", headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and _code(rebound) == "host_not_allowed"
    own = client.post(
        "/api/v1/assets", files={"file": ("a.png", png_bytes(), "image/png")}, headers={"Origin": LOCAL}
    )
    assert own.status_code == 201, own.text
    vite = client.get("/api/v1/assets", headers={"Origin": "http://localhost:5173"})
    assert vite.status_code == 200


def test_a_cross_site_write_is_refused_even_without_an_origin_header(client: TestClient) -> None:
    response = client.post(
        "/api/v1/assets",
        files={"file": ("a.png", png_bytes(), "image/png")},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403 and _code(response) == "cross_site_request"
    # A cross-site GET of public data is a read a browser cannot show to the other page: allowed.
    assert client.get("/health", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_configured_hosts_and_origins_are_allowed(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        api_host="0.0.0.0",
        jwt_secret=SECRET,
        allowed_hosts=("media.example.com",),
        allowed_origins=("https://media.example.com",),
    )
    with TestClient(app=create_app(settings), base_url="https://media.example.com") as c:
        response = c.get(
            "/api/v1/assets", headers={"Origin": "https://media.example.com", **bearer(["admin"])}
        )
        assert response.status_code == 200
        other = c.get("/api/v1/assets", headers={"Origin": "https://other.example", **bearer(["admin"])})
        assert other.status_code == 403


def test_the_policy_takes_the_web_uis_cookie_when_no_header_is_sent(tmp_path: Path) -> None:
    from api_support import token

    policy = RequestPolicy.for_server(make_settings(tmp_path, jwt_secret=SECRET), "127.0.0.1")
    principal = policy.evaluate(
        "GET", "/api/v1/assets", {"host": "127.0.0.1:8000", "cookie": f"dataflux_token={token(['search'])}"}
    )
    assert principal is not None and principal.allows("search") and not principal.allows("assets:write")


def test_malformed_bodies_get_a_reason_code_never_a_500(client: TestClient) -> None:
    empty_name = client.post("/api/v1/assets", files={"file": ("", png_bytes(), "image/png")})
    assert empty_name.status_code == 400 and _code(empty_name) == "invalid_encoding"
    boundary = b"X"
    body = (
        b'--X\r\nContent-Disposition: form-data; name="context"\r\n\r\n\xff\xfe\r\n'
        b'--X\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--X--\r\n"
    )
    latin = client.post(
        "/api/v1/assets",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"},
    )
    assert latin.status_code == 400 and _code(latin) == "invalid_encoding"
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    nested = client.post("/api/v1/search", content=deep, headers={"Content-Type": "application/json"})
    assert nested.status_code == 400 and _code(nested) == "invalid_body"
    for limit in (-1, 0):
        bad = client.post("/api/v1/search", json={"query": "x", "limit": limit})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "limit"
    assert client.post("/api/v1/search", json={"query": "x", "offset": -1}).status_code == 422


def test_date_filters_at_the_edges_of_the_calendar_answer(settings: Settings, client: TestClient) -> None:
    from graph_support import SegmentSpec, add_asset, picture

    from dataflux_pipelines.catalog import Catalog

    add_asset(Catalog(settings), "night.png", "image", [SegmentSpec(picture(1), {"dark": 0.7})])
    cases = {
        ("created_after", "0001-01-01T00:00:00Z"): 1,
        ("created_before", "0001-01-01T00:00:00Z"): 0,
        ("created_after", "0001-01-01T00:00:00+05:00"): 1,
        ("created_after", "9999-12-31T23:59:59Z"): 0,
        ("created_before", "9999-12-31T23:59:59-05:00"): 1,
    }
    for (name, value), total in cases.items():
        response = client.post("/api/v1/search", json={"query": "dark", "filters": {name: value}})
        assert response.status_code == 200, (name, value, response.text)
        assert response.json()["total"] == total, (name, value)
