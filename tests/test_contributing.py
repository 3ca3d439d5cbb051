"""The contributor's tools agree with each other: the forge workflow only calls .ci/run, every target
it names exists in the Makefile and is accepted by .ci/run, and the pre-commit hooks run tools
pinned in the lock file."""

from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from dataflux_pipelines.settings import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github/workflows/ci.yml"


def _make_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", text, flags=re.M))


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_test_job_runs_ci_run_with_a_make_target() -> None:
    jobs = _workflow()["jobs"]
    targets = _make_targets()
    called = []
    for name, job in jobs.items():
        runs = [step["run"] for step in job["steps"] if "run" in step]
        if name == "image":
            assert any("docker inspect" in r and "Health.Status" in r for r in runs)
            continue
        assert runs, f"job {name} runs nothing"
        for run in runs:
            argv = shlex.split(run)
            assert argv[0] == ".ci/run", f"job {name} runs {run!r} instead of .ci/run"
            target = argv[1] if len(argv) > 1 else "test"
            assert target in targets, f"job {name}: make has no target {target}"
            called.append(target)
    # The browser and slow suites are their own jobs; the core job leaves the browser out.
    assert {"test-core", "test-browser", "test-slow", "lint"} <= set(called)
    assert "not browser" in (REPO_ROOT / "Makefile").read_text().split("test-core:")[1].split("\n\n")[0]


def test_ci_run_refuses_an_unknown_target() -> None:
    proc = subprocess.run([str(REPO_ROOT / ".ci/run"), "no-such-target"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown target" in proc.stderr


def test_the_workflow_caches_pip_on_the_lock_file() -> None:
    for name, job in _workflow()["jobs"].items():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/setup-python"):
                assert step["with"]["cache"] == "pip", name
                assert step["with"]["cache-dependency-path"] == "requirements.lock", name


def test_pre_commit_hooks_run_locked_tools_from_the_venv() -> None:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    lock = (REPO_ROOT / "requirements.lock").read_text().lower()
    ids = set()
    for repo in config["repos"]:
        assert repo["repo"] == "local"
        for hook in repo["hooks"]:
            ids.add(hook["id"])
            tool = shlex.split(hook["entry"])[0]
            assert tool.startswith(".venv/bin/"), hook["id"]
            name = tool.removeprefix(".venv/bin/")
            assert name == "dataflux" or f"\n{name}==" in "\n" + lock, f"{name} is not pinned"
    assert {"ruff-check", "ruff-format", "mypy", "import-cycles"} <= ids
    assert "pre_commit==" in lock or "pre-commit==" in lock


def test_contributing_guide_names_the_commands_and_the_architecture() -> None:
    text = (REPO_ROOT / "CONTRIBUTING.md").read_text()
    for needle in ("make test", "make demo", "make hooks", "docs/architecture.md", "-m slow", "reliability"):
        assert needle in text, needle
