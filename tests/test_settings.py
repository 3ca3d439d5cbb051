"""Settings are typed, read once from the environment, and documented everywhere users look."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflux_pipelines.settings import ENV_VARS, REPO_ROOT, Settings, SettingsError


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


@pytest.mark.parametrize("doc", ["README.md", ".env.example"])
def test_every_variable_is_documented(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text()
    missing = [name for name in ENV_VARS if name not in text]
    assert not missing, f"{doc} does not document {missing}"


def test_the_reader_reads_exactly_the_documented_variables() -> None:
    source = (REPO_ROOT / "dataflux_pipelines" / "settings.py").read_text()
    import re

    read = set(re.findall(r'"((?:DATAFLUX|DAGSTER)_[A-Z0-9_]+)"', source.split("ENV_VARS")[0]))
    assert read == set(ENV_VARS)
