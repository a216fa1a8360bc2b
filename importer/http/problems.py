"""How the HTTP side fails and is logged: RFC 9457 problem bodies for every error, without stack traces or input
echoed back, and one access-log line per request with CPR numbers masked (uvicorn's own access log is off: it
would print paths raw).
"""

import time
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from importer.errors import InfrastructureError
from importer.logs import get_logger
from importer.privacy import mask_cpr, mask_request_target

log = get_logger(__name__)

PROBLEM = "application/problem+json"
# Health probes poll constantly; logging them would drown the façade requests.
UNLOGGED_PATHS = frozenset({"/status", "/metrics"})


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; `errors` lists what was wrong with the request (never the input itself)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ProblemDetails, "description": "Invalid input", "content": {PROBLEM: {}}},
    503: {"model": ProblemDetails, "description": "Database unavailable", "content": {PROBLEM: {}}},
}


def problem(status: int, title: str, detail: str | None = None, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body = ProblemDetails(title=title, status=status, detail=detail, errors=errors).model_dump(exclude_none=True)
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
        reference = {"$ref": f"#/components/schemas/{ProblemDetails.__name__}"}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if "requestBody" in operation:  # a body that is not JSON at all: FastAPI answers 400
                    operation.setdefault("responses", {}).setdefault("400", {"description": "Malformed body"})
                for code, response in operation.get("responses", {}).items():
                    if code[:1] in {"4", "5"} and (code != "500" or PROBLEM in response.get("content", {})):
                        response["content"] = {PROBLEM: {"schema": reference}}
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas[ProblemDetails.__name__] = ProblemDetails.model_json_schema()
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

    It is also where an unexpected error becomes a 500 problem (see install_problem_handlers). A plain ASGI
    middleware: Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`) runs every request through a task
    group and memory streams of its own, which cost more than many a look-up."""
    app.add_middleware(AccessLog)


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500
        started = False

        async def sending(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:  # the last line of defence: a problem body, a masked log line, no trace
            # Masked as a request target: the message may echo what the client sent, in any form.
            log.error("façade request failed", path=mask_request_target(scope["path"]), error=type(error).__name__,
                      reason=mask_request_target(str(error).splitlines()[0] if str(error) else ""))
            status = 500
            if not started:  # once an answer has begun, it can only end here (the client sees it cut short)
                await problem(500, "Internal Server Error", "the request could not be answered")(scope, receive, send)
        path = scope["path"]
        if path not in UNLOGGED_PATHS:
            # Decoded and masked wherever a number stands: a CPR may come percent-encoded, glued to other text.
            query = scope.get("query_string", b"").decode("utf-8", "replace")
            target = path + (f"?{query}" if query else "")
            log.info("http request", method=scope["method"], path=mask_request_target(target), status=status,
                     ms=round((time.perf_counter() - began) * 1000, 1))
