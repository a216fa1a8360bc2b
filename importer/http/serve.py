"""`stamdata-importer serve`: the read-only façades and /status without the importer, for query-only hosts.

/status reads the import status tables through the façade account too (a query-only host may have no other),
so it reports on the imports another host runs, and how far behind the importers each of its databases is.
uvicorn runs in a thread as in the daemon, and the main thread owns SIGTERM/SIGINT: uvicorn in the main thread
would re-raise the signal after shutting down, and the process would end "killed by SIGTERM" instead of exiting 0
as systemd expects of a clean stop.

With `http_workers` above 1 the command binds the listening socket itself and starts that many worker processes
that all accept on it, each serving the same app with connections of its own (nothing is shared between them but
the databases: `serve` keeps no state of its own, README "Beyond one machine"). Python runs one thread at a time
in a process, so this is how one host answers on more than one core. The parent only watches: a worker that
stops is replaced, one that stops within WORKER_START_S of its start ends the command (exit 3: a defect or a
setting that stops every worker would otherwise restart forever). SIGTERM stops the workers, then the parent.
"""

import dataclasses
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from types import FrameType

from importer.clock import SystemClock
from importer.config import Settings, parse_listen
from importer.errors import InfrastructureError
from importer.http.app import WebServer, create_app, facade_services, freeze_the_heap
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.tls import tls_options
from importer.load.plugin import Register, discover
from importer.logs import configure_logging, get_logger
from importer.signals import stop_requested_early

log = get_logger(__name__)

# A worker that stops sooner than this after its start is not restarted: the command ends (exit 3).
WORKER_START_S = 10.0


def serve(settings: Settings, registers: dict[str, Register], stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if stop_requested_early():
        stop.set()
    workers = int(settings.daemon["http_workers"])
    # No state of its own: every answer comes from the façade databases (a replica, or several to spread over).
    facades = _facade_database(settings)
    try:
        facades.check_cannot_write(bool(settings.daemon["allow_writable_facade"]))  # a writable account: exit 2
    finally:
        if workers > 1:
            facades.close()  # each worker opens its own
    if workers > 1:
        _serve_with_workers(settings, registers, stop, workers)
        return
    with _serving(settings, registers, facades) as web:
        log.info("serving façades", listen=settings.listen, registers=list(registers))
        while not stop.wait(0.5):
            if not web.thread.is_alive():
                raise InfrastructureError(f"the HTTP server on {settings.listen} stopped: {web.error}")
    log.info("façades stopped")


def _facade_database(settings: Settings) -> FacadeDatabase:
    return FacadeDatabase(settings.facade_database_url, max_lag_s=float(settings.daemon["max_lag_s"]))


@contextmanager
def _serving(settings: Settings, registers: dict[str, Register], facades: FacadeDatabase,
             sockets: list[socket.socket] | None = None) -> Iterator[WebServer]:
    """The app on uvicorn in a thread, from start to stop, and everything it holds closed afterwards."""
    health = HealthChecker(dataclasses.replace(settings, production_url=facades.url), registers, SystemClock(),
                           facades=facades, status_urls=facades.urls)
    # The app logs requests itself with CPR numbers masked; WebServer keeps uvicorn's raw access log off.
    services = facade_services(settings, facades, SystemClock())
    web = WebServer(create_app(health, None, services, list(registers.values())), settings.listen,
                    tls_options(settings), sockets)
    try:
        try:
            web.start()
        except RuntimeError as error:
            raise InfrastructureError(f"cannot serve HTTP on {settings.listen}: {error}") from error
        freeze_the_heap()
        yield web
    finally:
        web.stop()
        facades.close()
        services.close()
        health.close()


def _serve_with_workers(settings: Settings, registers: dict[str, Register], stop: threading.Event,
                        workers: int) -> None:
    tls = tls_options(settings)
    if tls is not None:
        tls.check()  # a missing certificate is a configuration error (exit 2), not a worker that keeps dying
    host, port = parse_listen(settings.listen)
    try:
        listener = listening_socket(host, port)
    except OSError as error:
        raise InfrastructureError(f"cannot serve HTTP on {settings.listen}: {error}") from error
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's threads
    running: list[tuple[BaseProcess, float]] = []

    def start(number: int) -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(settings, sorted(registers), listener, number),
                                  name=f"http-worker-{number}", daemon=True)
        process.start()
        return process, time.monotonic()

    try:
        running = [start(number) for number in range(workers)]
        log.info("serving façades", listen=settings.listen, registers=list(registers), workers=workers)
        while not stop.wait(0.5):
            for number, (process, began) in enumerate(running):
                if process.is_alive():
                    continue
                if time.monotonic() - began < WORKER_START_S:
                    raise InfrastructureError(f"HTTP worker {number} on {settings.listen} stopped at its start "
                                              f"(exit code {process.exitcode}); see its log lines above")
                log.warning("HTTP worker stopped; starting another", worker=number, exit_code=process.exitcode)
                running[number] = start(number)
    finally:
        for process, _ in running:
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: the worker stops its server and closes its connections
        for process, _ in running:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        listener.close()
    log.info("façades stopped")


def listening_socket(host: str, port: int) -> socket.socket:
    """The workers' shared listening socket, made as asyncio makes its own: with the protocol number TCP.

    asyncio sets TCP_NODELAY on an accepted connection only when the socket says IPPROTO_TCP (`socket.create_server`
    leaves it 0). Without it every answer sent in two writes (head, then body) waited for the client's delayed ACK:
    about 40 ms a request on a keep-alive connection, whatever the request cost.
    """
    family, kind, proto, _name, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def _worker(settings: Settings, names: list[str], listener: socket.socket, number: int) -> None:
    """One worker process: the same app as a single-process `serve`, accepting on the parent's socket."""
    configure_logging(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    found = discover()
    registers = {name: found[name] for name in names if name in found}
    with _serving(settings, registers, _facade_database(settings), [listener]) as web:
        log.info("HTTP worker serving", worker=number)
        while not stop.wait(0.5):
            if not web.thread.is_alive():
                raise SystemExit(3)
