"""Helpers of the browser tests: the system Chromium, a uvicorn server thread, screenshots."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from services import free_port

CHROMIUM = Path(os.environ.get("DATAFLUX_CHROMIUM", "/usr/bin/chromium"))
# Never a downloaded browser: the system Chromium, headless, with nothing phoning home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class Server:
    """The real app under uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"uvicorn-{self.port}")

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def screenshot(page: Any, name: str, tmp: Path, **kwargs: Any) -> Path:
    """Save a screenshot in tmp; also into docs/screenshots with DATAFLUX_SCREENSHOTS=1 (README images)."""
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    if os.environ.get("DATAFLUX_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path
