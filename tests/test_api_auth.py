"""Bearer-token auth over HTTP: missing, expired, forged and `alg: none` tokens, permissions, open mode."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from api_support import SECRET, api_client, bearer, make_settings, png_bytes, raw_token, token
from click.testing import CliRunner
from litestar.testing import TestClient

from dataflux_api.app import create_app
from dataflux_api.auth import create_token, decode_token
from dataflux_api.cli.main import cli
from dataflux_pipelines.settings import Settings, SettingsError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, jwt_secret=SECRET)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


def claims(**overrides: object) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    base: dict[str, object] = {
        "sub": "mallory",
        "iss": "dataflux",
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "permissions": ["admin"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data, default=lambda v: int(v.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def error_of(response) -> dict:
    return response.json()["error"]


def test_a_request_without_a_token_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/api/v1/assets")
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_token"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_expired_token_is_rejected(client: TestClient) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = create_token(SECRET, "alice", ["admin"], 60, now=old)
    response = client.get("/api/v1/assets", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_expired"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: raw_token(claims(), key="another-secret-" + "z" * 40), "wrong key"),
        (lambda: unsigned(claims()), "alg none"),
        (lambda: raw_token(claims(), algorithm="HS512"), "another algorithm with the right key"),
        (lambda: raw_token(claims(exp=None)), "no exp"),
        (lambda: raw_token(claims(sub=None)), "no sub"),
        (lambda: raw_token(claims(iss="someone-else")), "foreign issuer"),
        (lambda: raw_token(claims(permissions="admin")), "permissions not a list"),
        (lambda: "not.a.token", "garbage"),
    ],
)
def test_forged_or_malformed_tokens_are_rejected(client: TestClient, make, why: str) -> None:
    response = client.get("/api/v1/assets", headers={"Authorization": f"Bearer {make()}"})
    assert response.status_code == 401, why
    assert error_of(response)["code"] == "invalid_token", why


def test_a_non_bearer_scheme_is_rejected(client: TestClient) -> None:
    response = client.get("/api/v1/assets", headers={"Authorization": f"Basic {token(['admin'])}"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", "/api/v1/assets", "assets:read"),
        ("GET", "/api/v1/collections", "assets:read"),
        ("GET", "/api/v1/stats", "assets:read"),
        ("POST", "/api/v1/collections", "assets:write"),
        ("POST", "/api/v1/similar", "search"),
        ("GET", "/metrics", "admin"),
    ],
)
def test_each_route_requires_its_permission(client: TestClient, method: str, path: str, needs: str) -> None:
    body = (
        {"name": "x"}
        if path.endswith("collections")
        else {"entity_id": "00000000-0000-4000-8000-000000000000"}
    )
    others = [p for p in ("assets:read", "assets:write", "search") if p != needs]
    denied = client.request(method, path, headers=bearer(others), json=body if method == "POST" else None)
    assert denied.status_code == 403
    assert error_of(denied)["code"] == "missing_permission"
    assert needs in error_of(denied)["message"]
    allowed = client.request(method, path, headers=bearer([needs]), json=body if method == "POST" else None)
    assert allowed.status_code not in (401, 403), allowed.text


def test_a_good_token_reads_and_writes_within_its_permissions(client: TestClient) -> None:
    writer = bearer(["assets:write", "assets:read"])
    created = client.post(
        "/api/v1/assets", files={"file": ("p.png", png_bytes(1), "image/png")}, headers=writer
    )
    assert created.status_code == 201
    listed = client.get("/api/v1/assets", headers=bearer(["assets:read"]))
    assert [a["id"] for a in listed.json()["assets"]] == [created.json()["id"]]
    reader_upload = client.post(
        "/api/v1/assets",
        files={"file": ("q.png", png_bytes(2), "image/png")},
        headers=bearer(["assets:read"]),
    )
    assert reader_upload.status_code == 403
    admin_delete = client.delete(f"/api/v1/assets/{created.json()['id']}", headers=bearer(["admin"]))
    assert admin_delete.status_code == 204


def test_health_and_the_openapi_document_need_no_token(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["auth"] == {"mode": "jwt"}
    assert client.get("/schema/openapi.json").status_code == 200


def test_binding_beyond_loopback_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "api.example.com", "::"):
        with pytest.raises(SettingsError, match=f"refusing to serve on {host} without DATAFLUX_JWT_SECRET"):
            create_app(make_settings(tmp_path, api_host=host))
    assert create_app(make_settings(tmp_path, api_host="0.0.0.0", jwt_secret=SECRET)) is not None


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        create_app(make_settings(tmp_path, jwt_secret="short"))


def test_open_mode_on_loopback_says_so_in_the_log_and_in_health(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, api_host="127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="dataflux_api"):
        app = create_app(settings)
    assert any("runs OPEN" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    with TestClient(app=app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/v1/assets").status_code == 200
        auth = client.get("/health").json()["auth"]
    assert auth["mode"] == "open" and "DATAFLUX_JWT_SECRET" in auth["warning"]


def test_token_create_prints_a_token_the_api_accepts(tmp_path: Path, settings: Settings) -> None:
    env = {"DATAFLUX_HOME": str(settings.home), "DATAFLUX_JWT_SECRET": SECRET}
    result = CliRunner().invoke(
        cli, ["token", "create", "--subject", "ci", "--permission", "search", "--ttl", "2h"], env=env
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip().splitlines()[0]
    principal = decode_token(SECRET, printed)
    assert principal.subject == "ci" and principal.permissions == frozenset({"search"})
    exp = jwt.decode(printed, SECRET, algorithms=["HS256"], issuer="dataflux")["exp"]
    assert 7000 < exp - dt.datetime.now(dt.UTC).timestamp() <= 7200


def test_token_create_without_a_secret_and_api_on_a_public_address_fail_clearly(tmp_path: Path) -> None:
    env = {"DATAFLUX_HOME": str(tmp_path / "home"), "DATAFLUX_JWT_SECRET": ""}
    no_secret = CliRunner().invoke(
        cli, ["token", "create", "--subject", "x", "--permission", "admin"], env=env
    )
    assert no_secret.exit_code != 0 and "DATAFLUX_JWT_SECRET is not set" in no_secret.output
    public = CliRunner().invoke(cli, ["api", "--host", "0.0.0.0", "--no-warm"], env=env)
    assert public.exit_code != 0
    assert "refusing to serve on 0.0.0.0 without DATAFLUX_JWT_SECRET" in public.output
