"""The deployment files (compose, Dockerfile, dagster.yaml, Helm values, scripts) are complete and consistent."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflux_pipelines.settings import ENV_VARS, REPO_ROOT

DEPLOYMENT = REPO_ROOT / "deployment"
COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$${...}` is a literal `$`.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_ONE_SHOT = {"minio-init", "dagster-init", "metrics-token"}
_SECRET_WORDS = ("PASSWORD", "SECRET", "ROOT_USER", "ACCESS_KEY")


@pytest.fixture(scope="module")
def compose_text() -> str:
    """The compose file without its full-line comments (compose does not interpolate those)."""
    return "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


def _env_example_entries() -> dict[str, tuple[str, str]]:
    """Variable -> (value, the comment line right above it)."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    entries: dict[str, tuple[str, str]] = {}
    for i, line in enumerate(lines):
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            above = lines[i - 1] if i else ""
            entries[match.group(1)] = (match.group(2), above)
    return entries


def _dataflux_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_compose_runs_every_service_the_cluster_needs(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "minio",
        "minio-init",
        "dagster-init",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
        "api",
        "mcp",
        "metrics-token",
        "prometheus",
        "grafana",
    }


def test_every_service_names_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert svc.get("image") or svc.get("build"), name


def test_every_dataflux_service_uses_the_one_image_from_deployment_dockerfile(
    compose: dict[str, Any],
) -> None:
    services = _dataflux_services(compose)
    assert set(services) == {
        "dagster-init",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
        "api",
        "mcp",
        "metrics-token",
    }
    images = {svc["image"] for svc in services.values()}
    builds = {(svc["build"]["context"], svc["build"]["dockerfile"]) for svc in services.values()}
    assert len(images) == 1
    assert builds == {(".", "deployment/Dockerfile")}
    assert (REPO_ROOT / "deployment" / "Dockerfile").is_file()


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in _ONE_SHOT:
            assert svc.get("restart") == "no", name
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
        assert svc["restart"] == "unless-stopped", name


def test_every_service_has_resource_limits(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), name


def test_dependencies_wait_on_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, spec in svc.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            expected = "service_completed_successfully" if dep in _ONE_SHOT else "service_healthy"
            assert spec == {"condition": expected}, (name, dep)
    for name in ("dagster-webserver", "dagster-daemon"):
        assert services[name]["depends_on"]["dagster-code"] == {"condition": "service_healthy"}
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon", "api", "mcp"):
        assert services[name]["depends_on"]["dagster-init"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}


def test_named_volumes_are_declared_and_all_used(compose: dict[str, Any]) -> None:
    used: set[str] = set()
    for svc in compose["services"].values():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == set(compose["volumes"])
    assert {"postgres-data", "minio-data", "dataflux-home", "model-cache"} <= used


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    for svc in compose["services"].values():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO_ROOT / source).exists(), source


def test_service_commands_match_the_ports_and_workspace(compose: dict[str, Any]) -> None:
    services = compose["services"]
    code = services["dagster-code"]["command"]
    assert code[:3] == ["dagster", "api", "grpc"]
    assert code[code.index("-m") + 1] == "dataflux_pipelines.orchestration.definitions"
    workspace = yaml.safe_load((DEPLOYMENT / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server == {
        "host": "dagster-code",
        "port": int(code[code.index("-p") + 1]),
        "location_name": "dataflux",
    }
    assert services["api"]["command"][:2] == ["dataflux", "api"]
    assert services["mcp"]["command"][:3] == ["dataflux", "mcp", "--http"]
    published = {name: svc["ports"][0].rsplit(":", 1)[1] for name, svc in services.items() if "ports" in svc}
    assert published == {
        "minio": "9000",
        "dagster-webserver": "3000",
        "api": "8000",
        "mcp": "8004",
        "prometheus": "9090",
        "grafana": "3000",
    }
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), (name, port)


def test_every_compose_variable_is_documented_in_env_example(compose_text: str) -> None:
    documented = _env_example_entries()
    referenced = {m.group(1) for m in _REFERENCE.finditer(compose_text)}
    assert referenced, "no ${VAR} references found"
    missing = sorted(referenced - set(documented))
    assert not missing, f"compose variables missing from .env.example: {missing}"


def test_every_setting_is_documented_in_env_example_with_one_comment_line() -> None:
    entries = _env_example_entries()
    missing = sorted(set(ENV_VARS) - set(entries))
    assert not missing, f"settings missing from .env.example: {missing}"
    for name, (_value, above) in entries.items():
        assert above.startswith("# ") and len(above) > 4, f"{name} has no comment line above it"
    for name, description in ENV_VARS.items():
        assert entries[name][1].startswith(f"# {description}"), f"{name}: comment differs from ENV_VARS"


def test_secrets_have_no_defaults_anywhere(compose_text: str) -> None:
    for match in _REFERENCE.finditer(compose_text):
        name, operator = match.group(1), match.group(2)
        if any(word in name for word in _SECRET_WORDS):
            assert operator == ":?", f"${{{name}}} must be required (`:?`), not defaulted"
    assert not re.search(r"minioadmin|changeme|password123", compose_text, re.IGNORECASE)
    for name, (value, _above) in _env_example_entries().items():
        if any(word in name for word in _SECRET_WORDS):
            assert value == "", f".env.example ships a value for {name}"


def test_generated_env_fills_every_required_variable_with_fresh_random_values(
    compose_text: str, tmp_path: Path
) -> None:
    required = {m.group(1) for m in _REFERENCE.finditer(compose_text) if m.group(2) == ":?"}
    script = DEPLOYMENT / "generate-env.sh"
    first, second = tmp_path / "a" / ".env", tmp_path / "b" / ".env"
    for out in (first, second):
        subprocess.run(["bash", str(script), str(out)], check=True, capture_output=True, timeout=60)
    values = [
        dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", p.read_text(), re.MULTILINE)) for p in (first, second)
    ]
    for name in required:
        assert len(values[0][name]) >= 12, name
        assert values[0][name] != values[1][name], name
    for name in ("MINIO_ROOT_PASSWORD", "DATAFLUX_S3_SECRET_ACCESS_KEY"):
        assert 8 <= len(values[0][name]) <= 40, name  # MinIO's limits for secret keys
    assert set(values[0]) == set(_env_example_entries())
    assert first.stat().st_mode & 0o077 == 0  # only the owner may read the secrets


def test_generate_env_refuses_to_overwrite_an_existing_env(tmp_path: Path) -> None:
    out = tmp_path / ".env"
    out.write_text("POSTGRES_PASSWORD=in-use\n")
    proc = subprocess.run(
        ["bash", str(DEPLOYMENT / "generate-env.sh"), str(out)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "--force" in proc.stderr
    assert out.read_text() == "POSTGRES_PASSWORD=in-use\n"


def test_dockerfile_is_multi_stage_non_root_with_cpu_torch_by_default() -> None:
    text = (DEPLOYMENT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert [alias for _image, alias in stages] == ["builder", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert '--index-url "${TORCH_INDEX_URL}"' in text
    assert "pip install -r requirements.lock" in text
    assert "pip install --no-deps ." in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK\s", text, re.MULTILINE)
    for copied in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", text, re.MULTILINE):
        for source in copied.split():
            if source.startswith("deployment/"):
                assert (REPO_ROOT / source).is_file(), source


def test_dockerignore_keeps_the_venv_and_data_out_of_the_build_context() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".dataflux", ".env"} <= ignored


def test_production_dagster_yaml_passes_dagsters_instance_schema(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOYMENT / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"


def test_configurable_classes_in_dagster_yaml_accept_their_config() -> None:
    from dagster._config import validate_config
    from dagster._serdes.config_class import class_from_code_pointer

    raw = yaml.safe_load((DEPLOYMENT / "dagster.yaml").read_text())
    for section in ("run_coordinator", "run_launcher", "compute_logs"):
        entry = raw[section]
        klass = class_from_code_pointer(entry["module"], entry["class"])
        result = validate_config(klass.config_type(), entry.get("config", {}))  # type: ignore[attr-defined]
        assert result.success, (section, [e.message for e in result.errors])


def test_init_script_sets_both_single_writer_pools_to_one() -> None:
    text = (DEPLOYMENT / "init-dagster.sh").read_text()
    assert "instance.upgrade(" in text
    assert 'SINGLE_WRITER_POOLS = ("kuzu_writer", "duckdb_writer")' in text
    assert "set_concurrency_slots(pool, 1)" in text
    assert os.access(DEPLOYMENT / "init-dagster.sh", os.X_OK)
    subprocess.run(["bash", "-n", str(DEPLOYMENT / "init-dagster.sh")], check=True, timeout=30)
    subprocess.run(["sh", "-n", str(DEPLOYMENT / "minio-init.sh")], check=True, timeout=30)


def test_minio_init_creates_the_buckets_the_services_use(compose: dict[str, Any]) -> None:
    text = (DEPLOYMENT / "minio-init.sh").read_text()
    assert 'mc mb --ignore-existing "local/$DATAFLUX_S3_BUCKET"' in text
    assert 'mc mb --ignore-existing "local/$DAGSTER_COMPUTE_LOG_BUCKET"' in text
    env = compose["services"]["api"]["environment"]
    assert env["DATAFLUX_OBJECT_STORE_URL"] == "s3://${DATAFLUX_S3_BUCKET:-dataflux}/store"
    assert env["DATAFLUX_LANCE_URI"] == "s3://${DATAFLUX_S3_BUCKET:-dataflux}/lance"
    init_env = compose["services"]["minio-init"]["environment"]
    assert init_env["DATAFLUX_S3_BUCKET"] == "${DATAFLUX_S3_BUCKET:-dataflux}"
    assert init_env["DAGSTER_COMPUTE_LOG_BUCKET"] == env["DAGSTER_COMPUTE_LOG_BUCKET"]


def test_helm_values_use_the_k8s_run_launcher_and_the_dataflux_image(compose: dict[str, Any]) -> None:
    values = yaml.safe_load((DEPLOYMENT / "kubernetes" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "dataflux_pipelines.orchestration.definitions"
    assert deployment["image"]["repository"].endswith("/dataflux")
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values["dagsterDaemon"]["runRetries"] == {
        "enabled": True,
        "maxRetries": 2,
        "retryOnAssetOrOpFailure": False,
    }
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    # Dagster rejects run limits in both the coordinator and `concurrency` (see values.yaml).
    assert not {"maxConcurrentRuns", "tagConcurrencyLimits", "blockOpConcurrencyLimitedRuns"} & set(queued)


def test_helm_additional_instance_config_passes_dagsters_schema(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    values = yaml.safe_load((DEPLOYMENT / "kubernetes" / "values.yaml").read_text())
    extra = values["additionalInstanceConfig"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(extra))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response({"/ok": 200, "/mcp": 406}.get(self.path, 503))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOYMENT / "healthcheck.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthcheck_passes_on_2xx_and_4xx_responses(http_server: str) -> None:
    proc = _healthcheck(f"{http_server}/ok", f"{http_server}/mcp")
    assert proc.returncode == 0, proc.stderr


def test_healthcheck_fails_on_5xx_and_on_a_closed_port(http_server: str) -> None:
    proc = _healthcheck(f"{http_server}/ok", f"{http_server}/broken")
    assert proc.returncode == 1
    assert "HTTP 503" in proc.stderr
    port = _closed_port()
    assert _healthcheck(f"http://127.0.0.1:{port}/health").returncode == 1
    assert _healthcheck(f"tcp://127.0.0.1:{port}").returncode == 1


def test_healthcheck_reads_the_url_from_the_environment_by_default(http_server: str) -> None:
    env = dict(os.environ, DATAFLUX_HEALTHCHECK_URL=f"{http_server}/ok")
    assert _healthcheck(env=env).returncode == 0
    env["DATAFLUX_HEALTHCHECK_URL"] = ""
    proc = _healthcheck(env=env)
    assert proc.returncode == 1
    assert "DATAFLUX_HEALTHCHECK_URL" in proc.stderr


def test_missing_postgres_binaries_fail_the_suite_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services

    monkeypatch.setattr(services, "postgres_bindir", lambda: None)
    with (
        pytest.raises(pytest.fail.Exception, match=r"apt-get install postgresql-15"),
        services.running_postgres(),
    ):
        pass


def test_missing_moto_server_fails_the_suite_with_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import services

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        services.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "flask" else real_find_spec(name, *a),
    )
    with (
        pytest.raises(pytest.fail.Exception, match=r"pip install 'moto\[server\]'"),
        services.running_moto_server(),
    ):
        pass
