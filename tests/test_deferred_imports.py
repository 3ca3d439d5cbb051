"""A deferred package body: submodules import without it, the first use of the package runs it once,
and DataFlux's LanceDB work never needs lancedb's REST namespace client."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dataflux_pipelines.deferred_imports import defer_package_body
from dataflux_pipelines.settings import REPO_ROOT, Settings


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package `slowpkg` whose body counts its runs and pulls in a submodule `heavy`."""
    root = tmp_path / "slowpkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        textwrap.dedent(
            """
            import builtins
            builtins.slowpkg_runs = getattr(builtins, "slowpkg_runs", 0) + 1
            from slowpkg.heavy import Heavy
            VERSION = "1.0"
            """
        )
    )
    (root / "heavy.py").write_text("class Heavy:\n    pass\n")
    (root / "light.py").write_text("from slowpkg.heavy import Heavy\n\nclass Light(Heavy):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "slowpkg_runs", 0, raising=False)
    yield root
    for name in [m for m in sys.modules if m == "slowpkg" or m.startswith("slowpkg.")]:
        del sys.modules[name]


def test_submodules_import_without_the_body_and_the_first_use_runs_it_once(package: Path) -> None:
    import builtins

    defer_package_body("slowpkg")
    from slowpkg.light import Light

    assert Light.__mro__[1].__name__ == "Heavy"
    assert builtins.slowpkg_runs == 0
    import slowpkg

    assert slowpkg.VERSION == "1.0"  # a name only the body defines
    assert builtins.slowpkg_runs == 1
    assert slowpkg.Heavy is sys.modules["slowpkg.heavy"].Heavy
    assert "VERSION" in dir(slowpkg)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = slowpkg.missing
    assert builtins.slowpkg_runs == 1


def test_threads_asking_at_once_all_see_the_whole_body(package: Path) -> None:
    import builtins

    defer_package_body("slowpkg")
    import slowpkg

    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(slowpkg.VERSION)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["1.0"] * 8
    assert builtins.slowpkg_runs == 1


def test_an_imported_or_missing_package_is_left_alone() -> None:
    before = sys.modules["json"]
    defer_package_body("json")
    assert sys.modules["json"] is before
    defer_package_body("no_such_package_here")
    assert "no_such_package_here" not in sys.modules


def test_lancedb_work_leaves_the_rest_client_unloaded_until_it_is_asked_for(settings: Settings) -> None:
    # A fresh interpreter: this one has imported lancedb (and maybe the client) long ago.
    code = textwrap.dedent(
        """
        import sys
        import pyarrow as pa
        from dataflux_api.query.search import SearchEngine  # noqa: F401 - the API's lancedb imports
        from dataflux_pipelines.catalog import Catalog
        from dataflux_pipelines.settings import Settings

        catalog = Catalog(Settings.from_env())
        table = catalog.db.create_table("t", pa.table({"id": ["a", "b"], "x": [1, 2]}))
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            pa.table({"id": ["b", "c"], "x": [3, 4]})
        )
        assert sorted(table.to_arrow()["x"].to_pylist()) == [1, 3, 4]
        print(sorted(m for m in sys.modules if m.startswith("lance_namespace_urllib3_client.api")))
        import lance_namespace_urllib3_client as client
        print(client.TableApi.__name__, client.ApiClient.__name__, "TableApi" in dir(client))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "TableApi ApiClient True"]
