"""Decode hostile files in a killable worker process with a wall-clock and an address-space limit.

The worker is started with multiprocessing's *spawn* context: decord aborts in a forked child that
inherits a reader (a forked child that used an inherited decord reader died with SIGABRT), and spawn also keeps torch and the parent's open stores out
of the child. One `DecodeWorker` is a persistent child, so 200 images pay one process start, not 200.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.heap import release_heap

T = TypeVar("T")
log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0


def _limit_memory(memory_mb: int | None) -> None:
    if not memory_mb:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(conn: Connection, memory_mb: int | None) -> None:
    """Child loop: receive (fn, args, kwargs), send back ("ok", result) or a described failure."""
    _limit_memory(memory_mb)
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        fn, args, kwargs = message
        del message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except MediaError as exc:
            # MediaError's args do not round-trip through pickle, so send its two fields.
            reply = ("media_error", (exc.reason.value, exc.message))
        except MemoryError:
            reply = ("memory", traceback.format_exc(limit=-3))
        except Exception as exc:
            reply = ("error", (exc, traceback.format_exc()))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", "the result did not fit into the worker's memory limit"))
        except Exception as exc:  # an unpicklable result or exception
            text = f"{type(exc).__name__}: {exc}"
            conn.send(("error", (RuntimeError(f"decode worker could not return its result: {text}"), "")))
        # The call's frames and buffers are freed now; hand them back so an idle worker (it waits beside
        # the parent's embedding stage) holds its imports and models, not its last file's peak.
        del fn, args, kwargs, reply
        release_heap()


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown status"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class DecodeWorker:
    """A persistent spawn-started child that runs picklable module-level functions under limits.

    Timeouts, crashes and memory exhaustion restart the child and raise MediaError with
    DECODE_TIMEOUT, DECODER_CRASHED or DECODE_MEMORY_LIMIT; a MediaError raised by the function
    comes back as the same MediaError; any other exception is re-raised with the child's traceback
    attached as a note. One call at a time (calls from several threads are serialised).
    """

    def __init__(
        self,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        max_calls: int | None = 500,
    ) -> None:
        if timeout_s is None or memory_mb is None:
            from dataflux_pipelines.settings import get_settings

            settings = get_settings()
            timeout_s = settings.decode_timeout_s if timeout_s is None else timeout_s
            memory_mb = settings.decode_memory_mb if memory_mb is None else memory_mb
        self.timeout_s = float(timeout_s)
        self.memory_mb = memory_mb
        # Recycle the child now and then: native decoders may leak, and a fresh process caps that.
        self.max_calls = max_calls
        self.restarts = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._calls = 0
        self._lock = threading.Lock()

    def __enter__(self) -> DecodeWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def start(self) -> None:
        """Start the child now if it is not running (calls start it on demand otherwise)."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    self._kill()
                self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.memory_mb), name="dataflux-decode", daemon=True
        )
        process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_S):
            process.kill()
            process.join()
            raise MediaError(Reason.INTERNAL_ERROR, "the decode worker process did not start")
        try:
            parent.recv()
        except EOFError as exc:
            process.join()
            raise MediaError(
                Reason.INTERNAL_ERROR,
                f"the decode worker process died while starting ({_signal_name(process.exitcode)})",
            ) from exc
        self._process, self._conn, self._calls = process, parent, 0

    def _kill(self) -> int | None:
        """Stop the child now; returns its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join()
        return process.exitcode

    def close(self) -> None:
        """Ask the child to finish, and kill it if it does not within a few seconds."""
        with self._lock:
            process, conn = self._process, self._conn
            if process is None or conn is None:
                return
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            process.join(5)
            self._kill()

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` in the child and return its result, within the time limit."""
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        with self._lock:
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    self._kill()
                self._start()
            assert self._conn is not None
            try:
                self._conn.send((fn, args, kwargs))
            except (BrokenPipeError, OSError) as exc:
                code = self._kill()
                self.restarts += 1
                raise MediaError(
                    Reason.DECODER_CRASHED,
                    f"the decode worker was gone before the call ({_signal_name(code)})",
                ) from exc
            if not self._conn.poll(limit):
                self._kill()
                self.restarts += 1
                name = getattr(fn, "__name__", "decoder")
                raise MediaError(
                    Reason.DECODE_TIMEOUT,
                    f"{name} did not finish within {limit:g} s; the decoder was stopped",
                )
            try:
                kind, payload = self._conn.recv()
            except (EOFError, ConnectionResetError) as exc:
                code = self._kill()
                self.restarts += 1
                hint = ""
                if code is not None and -code in (signal.SIGABRT, signal.SIGKILL):
                    hint = f" (an allocation beyond the {self.memory_mb} MiB limit can also end this way)"
                raise MediaError(
                    Reason.DECODER_CRASHED, f"the decoder process died with {_signal_name(code)}{hint}"
                ) from exc
            self._calls += 1
            if kind == "memory":
                self._kill()  # the heap of a process that ran out of memory is not worth keeping
                self.restarts += 1
                raise MediaError(
                    Reason.DECODE_MEMORY_LIMIT,
                    f"decoding needed more than the {self.memory_mb} MiB memory limit of the decode worker",
                )
            if self.max_calls and self._calls >= self.max_calls and self._process is not None:
                self._conn.send(None)
                self._process.join(5)
                self._kill()
            if kind == "ok":
                return payload
            if kind == "media_error":
                reason, message = payload
                raise MediaError(reason, message)
            error, child_traceback = payload
            if child_traceback:
                error.add_note(f"in the decode worker:\n{child_traceback}")
            raise error


def run_isolated(
    fn: Callable[..., T],
    *args: Any,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    **kwargs: Any,
) -> T:
    """Run one function in a fresh decode worker (spawn, memory limit, timeout) and stop it afterwards."""
    with DecodeWorker(timeout_s=timeout_s, memory_mb=memory_mb) as worker:
        return worker.call(fn, *args, **kwargs)


# --- workers started ahead of their pipeline ------------------------------------------------------
_spares: list[DecodeWorker] = []
_prestarts: list[threading.Thread] = []
_spares_lock = threading.Lock()


def prestart(
    count: int,
    *,
    timeout_s: float,
    memory_mb: int | None,
    warm: Callable[..., Any] | None = None,
    warm_args: Sequence[Any] = (),
) -> list[DecodeWorker]:
    """Start `count` decode workers now, on a thread, for this process's next pipeline (`take_spare`);
    returns them (not yet taken).

    A command that knows it will decode (`dataflux process`) calls this first thing, so each child's
    start and its warm-up (`warm(*warm_args)`, a call that starts the loading on the child's own
    thread and returns) overlap the command's own start-up on another core. The warm call is queued
    on the worker like any call: a file sent meanwhile waits behind it, never beside it."""
    workers = [DecodeWorker(timeout_s=timeout_s, memory_mb=memory_mb) for _ in range(max(0, count))]
    with _spares_lock:
        _spares.extend(workers)

    def run() -> None:
        try:
            for worker in workers:
                if warm is None:
                    worker.start()
                else:  # the call starts the worker first, under the worker's lock
                    worker.call(warm, *warm_args)
        except Exception as exc:  # a worker that did not start here starts on its first call
            log.warning(
                "decode worker prestart failed (%s: %s); workers start on demand", type(exc).__name__, exc
            )

    thread = threading.Thread(target=run, name="dataflux-decode-prestart", daemon=True)
    with _spares_lock:
        _prestarts.append(thread)
    thread.start()
    return workers


def take_spare(timeout_s: float, memory_mb: int | None) -> DecodeWorker | None:
    """A prestarted worker with these limits, now owned by the caller (who closes it), or None."""
    with _spares_lock:
        for i, worker in enumerate(_spares):
            if worker.timeout_s == float(timeout_s) and worker.memory_mb == memory_mb:
                return _spares.pop(i)
    return None


def close_spares() -> None:
    """Close the prestarted workers no pipeline took (after their prestart, so none starts again)."""
    with _spares_lock:
        threads = list(_prestarts)
        _prestarts.clear()
    for thread in threads:
        thread.join()
    with _spares_lock:
        workers = list(_spares)
        _spares.clear()
    for worker in workers:
        worker.close()
