"""Third-party package bodies run on first use instead of on import, where start-up paid for code
DataFlux does not call."""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

# LanceDB imports `lance_namespace`, which imports its REST client's models; Python runs the client
# package's `__init__` on the way, and that imports all nine REST API classes (366 pydantic
# `validate_call` methods): 0.5-0.7 s of every process that imports lancedb (of 1.3-1.7 s for all of
# lancedb, measured with `-X importtime`). DataFlux opens local and S3 directories, never a REST
# namespace. The models are imported as before; the API classes load when anything asks for them.
DEFERRED_PACKAGES = ("lance_namespace_urllib3_client",)


def defer_package_body(name: str) -> None:
    """Put package `name` in `sys.modules` with its `__init__` not yet run: its submodules import as
    usual (they need only its `__path__`), and the first attribute the package itself lacks (or a
    `dir()`) runs the `__init__` then, once, so every name it defines is there when used. Nothing
    happens if the package is already imported or not installed."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    started = False

    def load() -> None:
        nonlocal started
        with lock:  # another thread asking meanwhile waits for the whole body, as an import would
            if started:
                return  # the body itself, while it runs, sees a partly initialised package as usual
            started = True
            try:
                loader.exec_module(module)
            except BaseException:
                started = False  # as a failed import would: the next use tries again
                raise
            for hook, own in (("__getattr__", module_getattr), ("__dir__", module_dir)):
                if module.__dict__.get(hook) is own:  # unless the body defined its own
                    del module.__dict__[hook]

    def module_getattr(attr: str) -> Any:
        load()
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    def module_dir() -> list[str]:
        load()
        return sorted(module.__dict__)

    module.__getattr__ = module_getattr  # type: ignore[method-assign]
    module.__dir__ = module_dir  # type: ignore[method-assign]
    sys.modules[name] = module


def defer_unused_package_bodies() -> None:
    for name in DEFERRED_PACKAGES:
        defer_package_body(name)
