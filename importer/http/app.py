"""The importer's HTTP face: one FastAPI app, served by the daemon itself on uvicorn in a thread.

`create_app` builds the app from what it needs (a health checker, optionally metrics, the façades' database
and the registers whose feed views and look-ups it serves), so `stamdata-importer serve` runs the same app
without a daemon.
"""

import asyncio
import gc
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn
import uvloop
from fastapi import FastAPI, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from importer.clock import Clock
from importer.config import Settings, parse_listen
from importer.http import clients, dashboard
from importer.http import feed as feeds
from importer.http import notifications as notifications_http
from importer.http import testdata as testdata_http
from importer.http.access import CREDENTIAL_CACHE_S, Access, document_security, include_guarded
from importer.http.audit import Auditor
from importer.http.copy_register import replication_service
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker, HealthReport
from importer.http.idcard import IdCardVerifier
from importer.http.metrics import CONTENT_TYPE, ImporterMetrics
from importer.http.problems import document_problems, install_access_log, install_problem_handlers
from importer.http.replication import replication_router
from importer.http.soap import SoapGuard, soap_router
from importer.http.testdata import LOCK_WAIT_S
from importer.http.tls import TlsOptions
from importer.load.notifications import topics as notification_topics
from importer.load.pipeline import Pipeline
from importer.load.plugin import Register
from importer.load.testdata import TestData
from importer.logs import get_logger

log = get_logger(__name__)

PROBED = frozenset({"/status", "/metrics"})  # what monitors probe, with HEAD as well as GET


@dataclass(frozen=True)
class FacadeServices:
    """What the façades need besides the app: the read-only database, the audit trail's writer, the rate
    limits and, where STS certificates are configured, the DGWS ID card verifier."""

    database: FacadeDatabase
    audit: Auditor
    rate_per_s: float = 20.0
    burst: float = 100.0
    idcards: IdCardVerifier | None = None
    testdata: TestData | None = None  # where testdata_enabled: dump/restore/reset through the importer's accounts
    # Change notifications, through the services' writable connection to the primary (none: they answer 503).
    notifications: notifications_http.NotificationService | None = None
    credential_cache_s: float = CREDENTIAL_CACHE_S  # a revocation takes effect within this (importer/http/access.py)

    def close(self) -> None:
        self.audit.close()
        if self.notifications is not None:
            self.notifications.close()
        if self.testdata is not None:
            self.testdata.pipeline.close()


def facade_services(settings: Settings, database: FacadeDatabase, clock: Clock) -> FacadeServices:
    """The façades' services as configured: the audit writer and the notification service on the services' account,
    the rate limits, and the ID card verifier where STS certificates are configured (a bad certificate file stops
    the start)."""
    daemon = settings.daemon
    idcards = None
    if settings.sts_certificates:
        idcards = IdCardVerifier.from_files(settings.sts_certificates, int(daemon["dgws_min_security_level"]),
                                            clock.now)
    testdata = TestData(Pipeline(settings, clock), LOCK_WAIT_S) if daemon["testdata_enabled"] else None
    return FacadeServices(database, Auditor(settings.service_database_url, clock), float(daemon["rate_limit_per_s"]),
                          float(daemon["rate_limit_burst"]), idcards, testdata,
                          notifications_http.NotificationService(settings.service_database_url, clock),
                          float(daemon["credential_cache_s"]))


def create_app(
    health: HealthChecker,
    metrics: ImporterMetrics | None = None,
    facades: FacadeServices | None = None,
    registers: Sequence[Register] = (),
    importer: dashboard.Importer | None = None,
) -> FastAPI:
    """/status (and /metrics when given), plus the registers' façades (every one needs a client with a scope), and
    the operator's page at / (with the unlock action where the importer itself runs: `importer`).

    The OpenAPI document is served at /openapi.json, and Swagger UI at /docs from files in the package (FastAPI's
    own docs load scripts from outside, which a backend host should not need).
    """
    app = FastAPI(
        title="stamdata importer",
        summary="Read-only façades over the national health reference registers: replication feed and lookups.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_problem_handlers(app)
    scoped: dict[str, str] = {}
    if facades is not None:
        scoped = include_facades(app, facades, registers)
        document_security(app, clients.known_scopes(register.name for register in registers), scoped)
    operators = (Access(facades.database, facades.rate_per_s, facades.burst, facades.credential_cache_s)
                 if facades is not None else None)
    dashboard.install(app, health, importer=importer, access=operators, metrics=metrics is not None, scoped=scoped)
    document_problems(app)
    install_access_log(app)

    health_content = {"text/plain": {"schema": {"type": "string"}, "example": "OK\n"},
                      "application/json": {"schema": {"type": "object"}}}

    @app.get("/status", tags=["operations"], response_class=Response,
             responses={200: {"description": "Healthy", "content": health_content},
                        500: {"description": "Not healthy; the first line names the reason",
                              "content": health_content},
                        503: {"description": "The façade databases are all more than max_lag_s behind the "
                              "importers", "content": health_content}})
    async def get_status(format: str = Query("text", pattern="^(text|json)$")) -> Response:
        report = await bounded_check(health)
        if metrics is not None:
            metrics.observe_health(report)
        code = 200 if report.ok else 503 if report.lagging else 500  # 503: this host's databases lag too far
        if format == "json":
            return Response(report.as_json(), status_code=code, media_type="application/json")
        return Response(report.as_text(), status_code=code, media_type="text/plain; charset=utf-8")

    if metrics is not None:
        exposed = metrics

        @app.get("/metrics", tags=["operations"], response_class=Response)
        async def get_metrics() -> Response:
            report = await bounded_check(health)
            exposed.observe_health(report)
            return Response(exposed.exposition(), media_type=CONTENT_TYPE)

    # HEAD too (the platform's monitors probe that way), answered by the same handlers, left out of the document.
    for route in [route for route in app.routes if isinstance(route, APIRoute) and route.path in PROBED]:
        app.add_api_route(route.path, route.endpoint, methods=["HEAD"], include_in_schema=False,
                          response_class=Response)
    return app


async def bounded_check(health: HealthChecker) -> HealthReport:
    """The health check, answered within its timeout whatever the database does.

    The check does blocking database I/O, so it runs in a worker thread (the event loop keeps serving); a
    database that froze makes it a red report after `timeout_s` instead of a request that hangs. The thread
    itself ends when the connection's own read timeout (the same value) fires.
    """
    try:
        return await asyncio.wait_for(run_in_threadpool(health.check), timeout=health.timeout_s)
    except TimeoutError:
        return await run_in_threadpool(health.unanswered)


def freeze_the_heap() -> None:
    """Exempts every object alive now (modules, the app, its routes and models) from the collector's full passes.

    A full (oldest-generation) collection walks every object it tracks: in a serving process that took 100-115 ms,
    a stall of every request in flight, and under load it came every few seconds (it was the look-ups' p99).
    Called once, when a serving process is set up; what it holds then lives as long as the process anyway.
    """
    gc.freeze()


class WebServer:
    """uvicorn in a background thread, stoppable from the daemon's shutdown path.

    With `tls` it speaks HTTPS only (and asks clients for certificates when there is a client CA); its files
    are checked here, so a missing or unreadable one is a ConfigurationError (exit 2) naming it.
    """

    def __init__(self, app: FastAPI, listen: str, tls: TlsOptions | None = None,
                 sockets: list[socket.socket] | None = None) -> None:
        host, port = parse_listen(listen)
        if tls is not None:
            tls.check()
        self.listen, self.tls = listen, tls
        self.sockets = sockets  # a listening socket bound by a parent process (serve's workers share it)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
                                **(tls.uvicorn_options() if tls is not None else {}))
        # Outside the main thread uvicorn leaves signal handling alone: signals belong to the daemon.
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            # uvloop, as `uvicorn` itself would choose it: the event loop's own work (socket writes, waking up for
            # a finished thread) was a tenth of a look-up in asyncio's Python loop. (HTTP is parsed by httptools,
            # which uvicorn picks by itself when installed; TLS keeps h11, see importer/http/tls.py.)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self.server.serve(sockets=self.sockets))
        except BaseException as error:  # reported by start(); the thread must not die silently
            self.error = error

    def start(self, timeout_s: float = 10.0) -> None:
        self.thread.start()
        waited = 0.0
        while not self.server.started and self.thread.is_alive() and waited < timeout_s:
            self.thread.join(0.05)
            waited += 0.05
        if not self.server.started:
            raise RuntimeError(f"HTTP server did not start: {self.error or 'timeout'}")
        log.info("HTTP server started", listen=self.listen,
                 **(self.tls.describe() if self.tls is not None else {"tls": False, "client_certificates": "no"}))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def include_facades(app: FastAPI, services: FacadeServices, registers: Sequence[Register]) -> dict[str, str]:
    """The feed of every declared view (HTTP and the platform's SOAP) and every register's own look-ups, each
    behind its scope: `feed:<register>` for a view, `lookup:<register>` for a register's look-ups. Returns the
    scope of every HTTP path, for the OpenAPI document."""
    access = Access(services.database, services.rate_per_s, services.burst, services.credential_cache_s)
    views = feeds.bind_views(registers)
    scoped: dict[str, str] = {}
    for view in views:
        include_guarded(app, replication_router([view], services.database), access.require(view.scope), scoped)
    # An ID card vouches for a system of the platform: it may replicate every view and look authorisations up,
    # as on the platform's own services.
    idcard_scopes = [*(view.scope for view in views), *(f"lookup:{register.name}" for register in registers)]
    guard = SoapGuard(access, services.idcards, idcard_scopes)
    app.include_router(soap_router(replication_service(views, services.database), guard))
    for register in registers:
        routers = register.facade_routers(services.database, services.audit)
        if routers.http is not None:
            include_guarded(app, routers.http, access.require(f"lookup:{register.name}"), scoped)
        for service in routers.soap:
            app.include_router(soap_router(service, guard))
        if register.testdata is not None:
            include_guarded(app, testdata_http.json_router(register, services.testdata, services.audit),
                            access.require(testdata_http.SCOPE), scoped)
            if register.testdata.person_column is not None:
                app.include_router(soap_router(testdata_http.soap_service(register, services.testdata,
                                                                          services.audit), guard))
    if topics := notification_topics(registers):
        include_guarded(app, notifications_http.router(services.notifications, topics),
                        access.require(notifications_http.SCOPE), scoped)
    return scoped
