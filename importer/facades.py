"""The read-only service façades' common ground: the read-only database, problem bodies, the access log.

The façades are the replication feed of every declared view (importer/replication.py) and each register's
own lookup router. Everything reads through `FacadeDatabase`, which connects with the façade account (`facade_url`, by
default the production URL) and additionally marks every session read-only, so a façade cannot write even
when it is given an account that could. Errors leave as JSON problem bodies (RFC 9457) without stack traces,
and requests are logged with CPR numbers masked (uvicorn's own access log is off: it would print paths raw).
"""

import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from importer import feed as feeds
from importer.clock import Clock, SystemClock
from importer.db import create_engine
from importer.errors import InfrastructureError
from importer.logs import get_logger
from importer.plugin import Register
from importer.privacy import mask_cpr

log = get_logger(__name__)

PROBLEM = "application/problem+json"
# Health probes poll constantly; logging them would drown the façade requests.
UNLOGGED_PATHS = frozenset({"/status", "/metrics"})


class FacadeDatabase:
    """Read-only connections, created lazily so an unreachable database is a 503, not a failed start."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()  # "now" of every answer (the feed's `updated`, a look-up's default)
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                engine = create_engine(self.url, readonly=True)
                sa.event.listen(engine, "connect", _read_only_session)
                self._engine = engine
            return self._engine

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """One transaction per request (one consistent snapshot), always rolled back: nothing is written."""
        with self.engine().connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
            finally:
                transaction.rollback()

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _read_only_session(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
    finally:
        cursor.close()


# --- Problems ---------------------------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details; `errors` lists what was wrong with the request (never the input itself)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid input", "content": {PROBLEM: {}}},
    503: {"model": Problem, "description": "Database unavailable", "content": {PROBLEM: {}}},
}


def problem(status: int, title: str, detail: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, errors=errors).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error is a JSON problem: validation errors name the parameter and rule, never echo the value."""

    async def invalid(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [{"loc": [str(part) for part in item.get("loc", ())], "msg": mask_cpr(str(item.get("msg", "")))}
                  for item in error.errors()]
        return problem(422, "Unprocessable Content", "the request does not satisfy the API", errors)

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        return problem(error.status_code, _title(error.status_code), mask_cpr(str(error.detail)),
                       headers=getattr(error, "headers", None))

    async def unavailable(request: Request, error: Exception) -> Response:
        reason = str(getattr(error, "orig", error)).strip()
        log.error("façade database unavailable", path=mask_cpr(request.url.path), error=type(error).__name__,
                  reason=mask_cpr(reason.splitlines()[0] if reason else ""))
        return problem(503, "Service Unavailable", "the database cannot be read right now",
                       headers={"Retry-After": "5"})

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(sa.exc.DBAPIError, unavailable)
    app.add_exception_handler(sa.exc.TimeoutError, unavailable)  # every pooled connection busy for 30 s
    app.add_exception_handler(InfrastructureError, unavailable)
    # Anything else is answered by the access log middleware below: a handler for Exception would run in
    # Starlette's outermost middleware, which re-raises after answering, and uvicorn would print the traceback
    # (messages included, unmasked) to stderr.


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the handlers above do: every error response is a problem+json body.

    FastAPI documents its validation errors as `application/json` HTTPValidationError; this app never sends
    those, so the document would lie to generated clients (and to schemathesis).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        reference = {"$ref": "#/components/schemas/Problem"}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    if code[:1] in {"4", "5"} and (code != "500" or PROBLEM in response.get("content", {})):
                        response["content"] = {PROBLEM: {"schema": reference}}
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_access_log(app: FastAPI) -> None:
    """One log line per façade request, path and query masked: a CPR in a URL is personal data too.

    It is also where an unexpected error becomes a 500 problem (see install_problem_handlers)."""

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        began = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as error:  # the last line of defence: a problem body, a masked log line, no trace
            log.error("façade request failed", path=mask_cpr(request.url.path), error=type(error).__name__,
                      reason=mask_cpr(str(error).splitlines()[0] if str(error) else ""))
            response = problem(500, "Internal Server Error", "the request could not be answered")
        if request.url.path not in UNLOGGED_PATHS:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            log.info("http request", method=request.method, path=mask_cpr(target), status=response.status_code,
                     ms=round((time.perf_counter() - began) * 1000, 1))
        return response


def include_facades(app: FastAPI, database: FacadeDatabase, registers: Sequence[Register]) -> None:
    """The feed of every declared view and every register's own lookup router, on the given app."""
    from importer.replication import replication_router  # it builds on this module

    app.include_router(replication_router(feeds.bind_views(registers), database))
    for register in registers:
        router = register.facade_router(database)
        if router is not None:
            app.include_router(router)
