"""Who may ask what: every data endpoint needs a client with a scope (README, "Access").

A request identifies its client by a bearer token (`Authorization: Bearer <token>`) or, where the server speaks
mutual TLS, by a client certificate whose subject is registered for a client. Without credentials the answer is
401, with credentials that match no active client also 401 (the same answer for a malformed header, an unknown
and a revoked token: nothing tells a prober which names or tokens exist), with the wrong scope 403, all as
problem bodies. Each client spends from its own token bucket; credentials that fail spend from a bucket of the
address they came from, so guessing tokens meets 429 quickly. `/status`, `/metrics` and the SOAP services' WSDLs
carry no personal data and stay open.

Clients are read through the façades' read-only account, and a client found is remembered for
`credential_cache_s` (2 s by default; 0: read on every request): a revocation takes effect on every host within
that long. Only clients found are remembered, never a credential that failed, and a remembered client is used only
while the clock stands within its window (a clock set back does not stretch it). The bucket state is per process
(a host behind a balancer limits its own share).
"""

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from importer.config import DAEMON_DEFAULTS
from importer.http import clients
from importer.http.database import FacadeDatabase
from importer.http.tls import client_certificate_subject
from importer.logs import get_logger

log = get_logger(__name__)

# RFC 6750's b64token, bounded: longer is not a token of ours and is not worth a database round trip.
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9._~+/-]{1,200}=*) *$", re.IGNORECASE)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stamdata"'}
# How long a client found by its credentials is used without reading it again: the bound on how late a
# revocation takes effect (setting credential_cache_s).
CREDENTIAL_CACHE_S = float(DAEMON_DEFAULTS["credential_cache_s"])
BEARER_SCHEME = "bearerAuth"
MTLS_SCHEME = "mutualTLS"


@dataclass(frozen=True)
class Caller:
    """An identified client: its name (what the audit trail records) and what it may do."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class Denied(Exception):
    """Why a request is not answered: an HTTP status, a message that names no client, and headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def as_http(self) -> HTTPException:
        return HTTPException(self.status, self.detail, headers=self.headers or None)


class TokenBuckets:
    """Token buckets by key: `rate` tokens a second up to `burst`. Full buckets are forgotten (they hold nothing
    a new bucket would not), so memory stays bounded by the keys active within one refill."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go; otherwise the seconds until a token is there (for Retry-After)."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.rate if self.rate > 0 else math.inf
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 10_000:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(min(seconds, 86_400))))}


class CredentialCache:
    """Active clients by credential (a token's sha256, or a certificate subject), each for `ttl_s` seconds of the
    clock from when it was read. Failed credentials are never kept: an unknown or revoked one is asked of the
    database every time (and spends from its address's bucket). Bounded: at `limit` entries the stale ones go,
    and if that is not enough, all."""

    def __init__(self, ttl_s: float, now: Callable[[], datetime], limit: int = 10_000) -> None:
        self.ttl = timedelta(seconds=max(0.0, ttl_s))
        self.now = now
        self.limit = limit
        self._entries: dict[str, tuple[clients.Client, datetime]] = {}

    def get(self, key: str) -> clients.Client | None:
        if not self.ttl:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        client, read_at = found
        if read_at <= self.now() < read_at + self.ttl:
            return client
        self._entries.pop(key, None)
        return None

    def put(self, key: str, client: clients.Client) -> None:
        if not self.ttl:
            return
        now = self.now()
        if len(self._entries) >= self.limit:
            for stale in [known for known, (_, at) in list(self._entries.items()) if not at <= now < at + self.ttl]:
                self._entries.pop(stale, None)
            if len(self._entries) >= self.limit:
                self._entries.clear()
        self._entries[key] = (client, now)


@dataclass(frozen=True)
class _Credential:
    """What a request presents: a bearer token or a verified certificate's subject (at most one is used)."""

    token: str | None
    subject: str | None

    @property
    def key(self) -> str:
        return f"token:{clients.token_hash(self.token)}" if self.token is not None else f"subject:{self.subject}"


class Access:
    """Identifies the caller of a request and checks its scope; one per app."""

    def __init__(self, database: FacadeDatabase, rate_per_s: float, burst: float,
                 credential_cache_s: float = CREDENTIAL_CACHE_S) -> None:
        self.database = database
        self.clients = TokenBuckets(rate_per_s, burst)
        self.failures = TokenBuckets(rate_per_s, burst)
        self.known = CredentialCache(credential_cache_s, lambda: database.clock.now())

    def identify(self, request: Request) -> Caller:
        """The client behind a request, or `Denied` (401, or 429 when this address keeps failing). Blocking: it
        may read the database."""
        credential = _credential(request)
        client = self._remembered(credential)
        if client is None and credential is not None:
            client = self._read(credential)
        return self._admit(request, credential, client)

    async def identify_async(self, request: Request) -> Caller:
        """`identify` for the event loop: a remembered client costs no thread, the database is read in one."""
        credential = _credential(request)
        client = self._remembered(credential)
        if client is None and credential is not None:
            client = await run_in_threadpool(self._read, credential)
        return self._admit(request, credential, client)

    def _remembered(self, credential: "_Credential | None") -> clients.Client | None:
        return None if credential is None else self.known.get(credential.key)

    def _read(self, credential: _Credential) -> clients.Client | None:
        with self.database.connect() as connection:
            if credential.token is not None:
                client = clients.by_token(connection, credential.token)
            else:
                assert credential.subject is not None
                client = clients.by_certificate(connection, credential.subject)
        if client is not None:
            self.known.put(credential.key, client)
        return client

    def _admit(self, request: Request, credential: "_Credential | None", client: clients.Client | None) -> Caller:
        if client is None:
            address = request.client.host if request.client is not None else "unknown"
            wait = self.failures.take(f"address:{address}")
            if wait:
                raise Denied(429, "too many requests with failing credentials; slow down", retry_after(wait))
            if credential is None and request.headers.get("authorization") is None:
                raise Denied(401, "credentials required: Authorization: Bearer <token>, or a client certificate",
                             CHALLENGE)
            raise Denied(401, "the credentials are not valid", {
                "WWW-Authenticate": 'Bearer realm="stamdata", error="invalid_token"'})
        wait = self.clients.take(f"client:{client.name}")
        if wait:
            raise Denied(429, "rate limit exceeded", retry_after(wait))
        return Caller(client.name, client.scopes)

    def require(self, scope: str) -> "RequireScope":
        return RequireScope(self, scope)


class RequireScope:
    """A FastAPI dependency: the request's caller, which must hold `scope`. The caller is also left in
    `request.state.caller` for the handler (the audit trail records it)."""

    def __init__(self, access: Access, scope: str) -> None:
        self.access = access
        self.scope = scope

    async def __call__(self, request: Request) -> Caller:  # the database, when asked, is read in a worker thread
        try:
            caller = await self.access.identify_async(request)
        except Denied as denied:
            raise denied.as_http() from None
        if not caller.allows(self.scope):
            raise HTTPException(403, f"this client does not hold the scope {self.scope}")
        request.state.caller = caller
        return caller


def _credential(request: Request) -> _Credential | None:
    """The credential a request presents: with an `Authorization` header its bearer token alone (None when the
    header is malformed), otherwise the verified client certificate's subject, if any."""
    header = request.headers.get("authorization")
    if header is not None:
        match = _BEARER.match(header)
        return None if match is None else _Credential(match.group(1), None)
    subject = client_certificate_subject(request.scope)
    return None if subject is None else _Credential(None, subject)


def caller_of(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller):
        raise RuntimeError("no caller: the route is not guarded by a scope")  # a wiring defect, never input
    return caller


def include_guarded(app: FastAPI, router: APIRouter, guard: RequireScope, scoped: dict[str, str]) -> None:
    """Include a router whose every route needs `guard`'s scope, and note each path's scope for the OpenAPI
    document (included routers are resolved lazily by FastAPI, so the document cannot ask the app)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            scoped[route.path_format] = guard.scope
    app.include_router(router, dependencies=[Depends(guard)])


def document_security(app: FastAPI, scopes: Iterable[str], scoped: dict[str, str]) -> None:
    """The OpenAPI document states the schemes and, per operation, the scope it needs (OpenAPI 3.1 lets
    non-OAuth schemes list the roles an operation requires)."""
    build = app.openapi
    listed = list(scopes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        components = document.setdefault("components", {})
        components["securitySchemes"] = {
            BEARER_SCHEME: {"type": "http", "scheme": "bearer",
                            "description": "A client's token (`stamdata-importer clients add`). Scopes: "
                                           + ", ".join(f"`{scope}`" for scope in listed)},
            MTLS_SCHEME: {"type": "mutualTLS",
                          "description": "A client certificate whose subject is registered for a client "
                                         "(`clients add --certificate-subject`), where the server speaks TLS."},
        }
        for path, operations in document.get("paths", {}).items():
            scope = scoped.get(path)
            if scope is None:
                continue
            for operation in operations.values():
                operation["security"] = [{BEARER_SCHEME: [scope]}, {MTLS_SCHEME: [scope]}]
                operation.setdefault("responses", {}).update({
                    "401": {"description": "No valid credentials"},
                    "403": {"description": f"The client lacks the scope {scope}"},
                    "429": {"description": "Rate limit exceeded (see Retry-After)"},
                })
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
