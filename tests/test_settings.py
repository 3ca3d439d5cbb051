"""Settings are typed, read once from the environment, and documented everywhere users look."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflux_api.cli.config import generated_docs
from dataflux_pipelines.settings import REPO_ROOT, Settings, SettingsError, declared


def test_defaults_keep_all_data_in_one_home(tmp_path: Path) -> None:
    s = Settings.from_env({"DATAFLUX_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.object_store_url == f"file://{tmp_path.resolve() / 'store'}"
    assert s.lance_uri == str(tmp_path.resolve() / "lance")
    assert s.api_host == "127.0.0.1" and s.mcp_port == 8004 and s.jwt_secret is None
    assert s.mcp_allowed_roots == (tmp_path.resolve() / "inbox",)


def test_an_unusable_value_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="DATAFLUX_BATCH_SIZE"):
        Settings.from_env({"DATAFLUX_BATCH_SIZE": "many"})
    with pytest.raises(SettingsError, match="DATAFLUX_OBJECT_STORE_URL"):
        Settings.from_env({"DATAFLUX_OBJECT_STORE_URL": "ftp://x"})
    with pytest.raises(SettingsError, match="DATAFLUX_DECODE_MEMORY_MB"):
        Settings.from_env({"DATAFLUX_DECODE_MEMORY_MB": "12"})


def test_s3_settings_become_storage_options() -> None:
    s = Settings.from_env(
        {
            "DATAFLUX_OBJECT_STORE_URL": "s3://media/dataflux",
            "DATAFLUX_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "DATAFLUX_S3_ACCESS_KEY_ID": "key",
            "DATAFLUX_S3_SECRET_ACCESS_KEY": "secret",
        }
    )
    assert s.store_options["endpoint"] == "http://127.0.0.1:9000"
    assert s.store_options["allow_http"] == "true"
    assert s.store_options["aws_access_key_id"] == "key"


def test_env_example_and_the_readme_table_are_generated_from_the_declaration() -> None:
    for path, text in generated_docs().items():
        assert path.read_text() == text, f"{path.name} is out of date: run `dataflux settings --write`"
    readme = (REPO_ROOT / "README.md").read_text()
    example = (REPO_ROOT / ".env.example").read_text()
    for doc in declared():
        assert f"`{doc.env}`" in readme and f"{doc.env}=" in example


def test_from_env_reads_every_declared_variable_and_nothing_else(tmp_path: Path) -> None:
    defaults = Settings.from_env({"DATAFLUX_HOME": str(tmp_path)})
    changed = {
        "DATAFLUX_HOME": str(tmp_path / "h2"),
        "DAGSTER_HOME": str(tmp_path / "dh"),
        "DATAFLUX_OBJECT_STORE_URL": "s3://b/p",
        "DATAFLUX_LANCE_URI": "s3://b/l",
        "DATAFLUX_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "DATAFLUX_S3_REGION": "eu-west-1",
        "DATAFLUX_S3_ACCESS_KEY_ID": "k",
        "DATAFLUX_S3_SECRET_ACCESS_KEY": "s",
        "DATAFLUX_S3_MAX_ATTEMPTS": "2",
        "DATAFLUX_S3_RETRY_BASE_S": "0.5",
        "DATAFLUX_S3_TIMEOUT_S": "3",
        "DATAFLUX_MAX_RUN_ATTEMPTS": "7",
        "DATAFLUX_KILL_AT": "segments",
        "DATAFLUX_CLIP_MODEL": "/m/clip",
        "DATAFLUX_CLIP_REVISION": "r1",
        "DATAFLUX_SPEECH_MODEL": "/m/whisper",
        "DATAFLUX_TRANSCRIPTS": "off",
        "DATAFLUX_OCR": "off",
        "DATAFLUX_DEVICE": "cpu",
        "DATAFLUX_BATCH_SIZE": "7",
        "DATAFLUX_DECODE_TIMEOUT_S": "9.5",
        "DATAFLUX_DECODE_MEMORY_MB": "1024",
        "DATAFLUX_DECODE_WORKERS": "2",
        "DATAFLUX_FILE_TIME_BUDGET_S": "30",
        "DATAFLUX_MAX_GIF_FRAMES": "5",
        "DATAFLUX_MAX_SEGMENTS_PER_FILE": "10",
        "DATAFLUX_MAX_TEXT_CHARS": "5000",
        "DATAFLUX_API_HOST": "0.0.0.0",
        "DATAFLUX_API_PORT": "1",
        "DATAFLUX_HTTP_KEEP_ALIVE_S": "30",
        "DATAFLUX_JWT_SECRET": "x" * 40,
        "DATAFLUX_ALLOWED_HOSTS": "media.example.com",
        "DATAFLUX_ALLOWED_ORIGINS": "https://media.example.com",
        "DATAFLUX_UPLOAD_MAX_BYTES": "10",
        "DATAFLUX_MCP_HOST": "0.0.0.0",
        "DATAFLUX_MCP_PORT": "2",
        "DATAFLUX_MCP_ALLOWED_ROOTS": str(tmp_path / "r"),
        "DATAFLUX_DAGSTER_PORT": "3",
        "DATAFLUX_DAGSTER_METRICS_PORT": "9464",
        "DATAFLUX_LANCE_READ_CONSISTENCY_S": "0.5",
        "DATAFLUX_LANDING_SETTLE_S": "30",
        "DATAFLUX_PUBLISHED_POLL_S": "0.25",
        "DATAFLUX_GRAPH_SNAPSHOTS_KEPT": "3",
        "DATAFLUX_GRAPH_SNAPSHOT_GRACE_S": "30",
        "DATAFLUX_API_URL": "https://media.example.com/",
        "DATAFLUX_API_TOKEN": "t0ken",
    }
    assert set(changed) == {d.env for d in declared()}, "a declared setting is missing from this test"
    custom = Settings.from_env(changed)
    for doc in declared():
        assert getattr(custom, doc.field) != getattr(defaults, doc.field), doc.env


def test_settings_check_passes_on_the_repository() -> None:
    from click.testing import CliRunner

    from dataflux_api.cli.main import cli

    result = CliRunner().invoke(cli, ["settings", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
