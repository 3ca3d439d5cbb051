"""One version: `dataflux_pipelines.__version__`. Every copy that cannot import it (compose default,
.env.example, the Helm values, the installed metadata) must say the same, and the CLI reports it."""

from __future__ import annotations

import re
from importlib.metadata import version

import yaml
from click.testing import CliRunner

from dataflux_api.cli.main import cli
from dataflux_pipelines import __version__
from dataflux_pipelines.settings import REPO_ROOT


def test_the_version_is_a_semantic_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.]+)?", __version__)


def test_pyproject_takes_the_version_from_the_package() -> None:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text
    assert 'version = { attr = "dataflux_pipelines.__version__" }' in text
    assert version("dataflux") == __version__


def test_image_tags_match_the_version() -> None:
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert f"${{DATAFLUX_IMAGE:-dataflux:{__version__}}}" in compose
    env = (REPO_ROOT / ".env.example").read_text()
    assert f"DATAFLUX_IMAGE=dataflux:{__version__}" in env
    values = yaml.safe_load((REPO_ROOT / "deployment/kubernetes/values.yaml").read_text())
    tags = [d["image"]["tag"] for d in values["dagster-user-deployments"]["deployments"]]
    assert tags == [__version__] * len(tags)


def test_dataflux_version_prints_it() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dataflux, version {__version__}"


def test_the_changelog_has_an_unreleased_section_and_this_version() -> None:
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[0] == "Unreleased"
    assert __version__ in headings
