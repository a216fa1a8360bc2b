"""Façades over real HTTP: the app the daemon serves, on uvicorn at a free port, reading one test's databases."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from importer.clock import SystemClock
from importer.facades import FacadeDatabase
from importer.health import HealthChecker
from importer.plugin import discover
from importer.web import WebServer, create_app
from tests.conftest import Databases
from tests.daemon.harness import free_port


@dataclass(frozen=True)
class Served:
    base: str
    client: httpx.Client


@contextmanager
def serve(databases: Databases, facade_url: str | None = None) -> Iterator[Served]:
    """uvicorn in a thread (the daemon's WebServer), so requests cross a real socket and the real ASGI stack."""
    settings = databases.settings()
    registers = discover()
    facades = FacadeDatabase(facade_url or settings.facade_database_url)
    health = HealthChecker(settings, registers, SystemClock())
    port = free_port()
    server = WebServer(create_app(health, None, facades, list(registers.values())), f"127.0.0.1:{port}")
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            yield Served(base, client)
    finally:
        server.stop()
        facades.close()
        health.close()
