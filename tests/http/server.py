"""Façades over real HTTP: the app the daemon serves, on uvicorn at a free port, reading one test's databases."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from importer.clock import Clock, SystemClock
from importer.http.app import WebServer, create_app
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from tests.conftest import Databases
from tests.daemon.harness import free_port
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release


@dataclass(frozen=True)
class Served:
    base: str
    client: httpx.Client


def import_sample(databases: Databases, directory: Path) -> None:
    """Two autorisation dumps (a change, a removal) and one doseringsforslag release: every view has rows."""
    registers = discover()
    pipeline = Pipeline(databases.settings())
    try:
        pipeline.import_dataset(registers["autorisation"], write_dump(directory, "20261120AutDK.csv", FIRST))
        pipeline.import_dataset(registers["autorisation"], write_dump(directory, "20261121AutDK.csv", SECOND))
        pipeline.import_dataset(registers["doseringsforslag"], write_release(directory / "r1", release_files(1)))
    finally:
        pipeline.close()


@contextmanager
def serve(databases: Databases, facade_url: str | None = None, clock: Clock | None = None) -> Iterator[Served]:
    """uvicorn in a thread (the daemon's WebServer), so requests cross a real socket and the real ASGI stack."""
    settings = databases.settings()
    registers = discover()
    clock = clock or SystemClock()
    facades = FacadeDatabase(facade_url or settings.facade_database_url, clock)
    health = HealthChecker(settings, registers, clock)
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
