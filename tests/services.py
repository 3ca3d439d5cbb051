"""Pytest fixtures that start real PostgreSQL and S3-compatible (moto) server processes on loopback.

Register with `pytest_plugins = ["services"]` in tests/conftest.py. Tests that use them carry
`@pytest.mark.services`. Missing server software fails the run with an install hint, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_PG_INSTALL_HINT = (
    "install the PostgreSQL server binaries: `apt-get install postgresql-15` on Debian/Ubuntu "
    "(or any PostgreSQL >= 13 whose initdb and pg_ctl are on PATH or reported by `pg_config --bindir`)"
)
_MOTO_INSTALL_HINT = "install moto's standalone server: `pip install 'moto[server]'` (part of `.[dev]`)"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    proc: subprocess.Popen, url: str, what: str, timeout: float = 180.0, status: int | None = None
) -> None:
    """Poll `url` until the server started as `proc` answers (any status below 500, or exactly `status`);
    fail at once if the process exits, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (urllib.error.URLError, OSError):
            code = None
        if code is not None and (code == status if status is not None else code < 500):
            return
        assert time.monotonic() < deadline, f"{what} did not answer {url} in {timeout:.0f} s"
        time.sleep(0.5)


def stop_process(proc: subprocess.Popen, timeout: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


# --- PostgreSQL --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL cluster with trust authentication on loopback."""

    host: str
    port: int
    user: str
    dbname: str
    data_dir: Path
    socket_dir: Path
    bindir: Path
    password: str = ""

    @property
    def dsn(self) -> str:
        """libpq keyword DSN for psycopg2.connect."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL with the psycopg2 driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def dagster_env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables deployment/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.dbname,
        }

    def create_database(self, name: str) -> str:
        """Create an empty database on this cluster and return its name."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name


def postgres_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, from PATH, pg_config or the Debian layout."""
    needed = ("initdb", "pg_ctl", "postgres")

    def complete(folder: Path) -> bool:
        return all(os.access(folder / name, os.X_OK) for name in needed)

    on_path = shutil.which("pg_ctl")
    if on_path:
        folder = Path(on_path).resolve().parent
        if complete(folder):
            return folder
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            out = ""
        if out and complete(Path(out)):
            return Path(out)

    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else -1

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if complete(Path(candidate)):
            return Path(candidate)
    return None


def _as_user(user: str | None) -> list[str]:
    """Command prefix that drops root to `user`: initdb and postgres refuse to run as root."""
    if user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        entry = pwd.getpwnam(user)
        return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
    pytest.fail(
        "tests run as root and need `runuser` or `setpriv` (util-linux) to start PostgreSQL as the "
        f"unprivileged {user!r} user: install util-linux",
        pytrace=False,
    )


def _run(cmd: list[str], what: str, log: Path | None = None, timeout: float = _START_TIMEOUT_S) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s: {' '.join(cmd)}", pytrace=False)
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        if log is not None:
            detail += f"\n--- server log ---\n{_tail(log)}"
        pytest.fail(f"{what} failed (exit {proc.returncode}): {detail}", pytrace=False)


@contextlib.contextmanager
def running_postgres(user: str = "dataflux", dbname: str = "dataflux_test") -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster in a temp folder on a free loopback port; stop and remove it after."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail(f"PostgreSQL server binaries not found: {_PG_INSTALL_HINT}", pytrace=False)
    os_user: str | None = None
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "tests run as root, initdb refuses root, and there is no `postgres` OS user to run it as: "
                f"{_PG_INSTALL_HINT} (the package creates that user) or `useradd --system postgres`",
                pytrace=False,
            )
        os_user = entry.pw_name
    # Not pytest's tmp_path: its parents are 0700 root, unreachable for the postgres user.
    root = Path(tempfile.mkdtemp(prefix="dataflux-pg-"))
    if os_user is not None:
        entry = pwd.getpwnam(os_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data_dir, socket_dir, log = root / "data", root / "sock", root / "server.log"
    prefix = _as_user(os_user)
    pg_ctl = str(bindir / "pg_ctl")
    started = False
    try:
        _run([*prefix, "mkdir", "-p", str(socket_dir)], "creating the socket folder")
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data_dir),
                "-A",
                "trust",
                "-U",
                user,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        port = 0
        for _attempt in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            options = (
                f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            cmd = [*prefix, pg_ctl, "-D", str(data_dir), "-l", str(log), "-o", options]
            proc = subprocess.run(
                [*cmd, "-w", "-t", str(int(_START_TIMEOUT_S)), "start"],
                capture_output=True,
                text=True,
                timeout=_START_TIMEOUT_S + 10,
            )
            if proc.returncode == 0:
                started = True
                break
        if not started:
            pytest.fail(f"PostgreSQL did not start:\n{_tail(log)}", pytrace=False)
        server = PostgresServer("127.0.0.1", port, user, dbname, data_dir, socket_dir, bindir)
        server.create_database(dbname)
        yield server
    finally:
        if started:
            stop = subprocess.run(
                [
                    *prefix,
                    pg_ctl,
                    "-D",
                    str(data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(_STOP_TIMEOUT_S)),
                    "stop",
                ],
                capture_output=True,
                text=True,
                timeout=_STOP_TIMEOUT_S + 10,
            )
            if stop.returncode != 0:
                _kill_postmaster(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data_dir: Path) -> None:
    """Last resort when `pg_ctl stop` failed: SIGKILL the postmaster named in postmaster.pid."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole session (trust auth, loopback, free port)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> PostgresServer:
    """A fresh, empty database on the session cluster, so tests never see each other's rows."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    return PostgresServer(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        name,
        postgres_server.data_dir,
        postgres_server.socket_dir,
        postgres_server.bindir,
    )


# --- S3 (moto server) --------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server process on loopback with fixed test credentials."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def make_bucket(self, prefix: str = "t") -> str:
        """Create a bucket with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings_env(self) -> dict[str, str]:
        """The DATAFLUX_S3_* variables that point `Settings` at this server."""
        return {
            "DATAFLUX_S3_ENDPOINT_URL": self.endpoint_url,
            "DATAFLUX_S3_REGION": self.region,
            "DATAFLUX_S3_ACCESS_KEY_ID": self.access_key_id,
            "DATAFLUX_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_moto_server() -> Iterator[S3Server]:
    """Start `python -m moto.server` on a free loopback port; terminate it after."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("moto.server") is None:
        pytest.fail(f"moto is not installed: {_MOTO_INSTALL_HINT}", pytrace=False)
    missing = [m for m in ("flask", "flask_cors", "werkzeug") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"moto's server extras are missing ({', '.join(missing)}): {_MOTO_INSTALL_HINT}", pytrace=False
        )
    workdir = Path(tempfile.mkdtemp(prefix="dataflux-moto-"))
    log = workdir / "moto.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _answers_http(f"{url}/moto-api/"):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"moto server did not answer within {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}",
                    pytrace=False,
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)  # doubles as the pause between probes
            if proc.returncode is not None:
                pytest.fail(f"moto server exited with {proc.returncode}:\n{_tail(log)}", pytrace=False)
        yield S3Server(url, "dataflux-test-key", "dataflux-test-secret")
    finally:
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server process for the whole session."""
    with running_moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session S3 server."""
    return s3_server.make_bucket()
