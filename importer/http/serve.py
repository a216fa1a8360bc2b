"""`stamdata-importer serve`: the read-only façades and /status without the importer, for query-only hosts.

/status reads the import status tables through the façade account too (a query-only host may have no other),
so it reports on the imports another host runs, and how far behind the importers each of its databases is.
uvicorn runs in a thread as in the daemon, and the main thread owns SIGTERM/SIGINT: uvicorn in the main thread
would re-raise the signal after shutting down, and the process would end "killed by SIGTERM" instead of exiting 0
as systemd expects of a clean stop.
"""

import dataclasses
import signal
import threading
from types import FrameType

from importer.clock import SystemClock
from importer.config import Settings
from importer.errors import InfrastructureError
from importer.http.app import WebServer, create_app, facade_services
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.tls import tls_options
from importer.load.plugin import Register
from importer.logs import get_logger
from importer.signals import stop_requested_early

log = get_logger(__name__)


def serve(settings: Settings, registers: dict[str, Register], stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if stop_requested_early():
        stop.set()
    # No state of its own: every answer comes from the façade databases (a replica, or several to spread over).
    facades = FacadeDatabase(settings.facade_database_url, max_lag_s=float(settings.daemon["max_lag_s"]))
    facades.check_cannot_write(bool(settings.daemon["allow_writable_facade"]))  # a writable account: exit 2
    health = HealthChecker(dataclasses.replace(settings, production_url=facades.url), registers, SystemClock(),
                           facades=facades, status_urls=facades.urls)
    # The app logs requests itself with CPR numbers masked; WebServer keeps uvicorn's raw access log off.
    services = facade_services(settings, facades, SystemClock())
    web = WebServer(create_app(health, None, services, list(registers.values())), settings.listen,
                    tls_options(settings))
    try:
        try:
            web.start()
        except RuntimeError as error:
            raise InfrastructureError(f"cannot serve HTTP on {settings.listen}: {error}") from error
        log.info("serving façades", listen=settings.listen, registers=list(registers))
        while not stop.wait(0.5):
            if not web.thread.is_alive():
                raise InfrastructureError(f"the HTTP server on {settings.listen} stopped: {web.error}")
    finally:
        web.stop()
        facades.close()
        services.close()
        health.close()
    log.info("façades stopped")
