"""Façades over real HTTP: the app the daemon serves, on uvicorn at a free port, reading one test's databases."""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from importer.clock import Clock, SystemClock
from importer.db import create_engine
from importer.http import clients
from importer.http.access import CREDENTIAL_CACHE_S
from importer.http.app import FacadeServices, WebServer, create_app
from importer.http.audit import Auditor
from importer.http.database import FacadeDatabase
from importer.http.health import HealthChecker
from importer.http.idcard import IdCardVerifier
from importer.http.notifications import NotificationService
from importer.load.pipeline import Pipeline
from importer.load.plugin import discover
from importer.load.testdata import TestData
from tests.conftest import REPO, Databases
from tests.daemon.harness import free_port, wait_for
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump
from tests.registers.doseringsforslag.kit import release_files, write_release


@dataclass(frozen=True)
class Served:
    base: str
    client: httpx.Client  # sends the token of a client holding every scope
    token: str
    databases: Databases

    def add_client(self, name: str, *scopes: str) -> str:
        """Another client, with only these scopes; returns its token."""
        return add_client(self.databases, name, *scopes)


def add_client(databases: Databases, name: str, *scopes: str) -> str:
    engine = create_engine(databases.production_url)
    try:
        with engine.begin() as connection:
            token = clients.add(connection, name, scopes, clients.known_scopes(discover()), datetime(2026, 12, 1))
    finally:
        engine.dispose()
    assert token is not None
    return token


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
def serve(databases: Databases, facade_url: str | None = None, clock: Clock | None = None,
          rate: tuple[float, float] = (1000.0, 1000.0), idcards: IdCardVerifier | None = None,
          testdata: bool = False, credential_cache_s: float = CREDENTIAL_CACHE_S) -> Iterator[Served]:
    """uvicorn in a thread (the daemon's WebServer), so requests cross a real socket and the real ASGI stack.

    The databases are migrated and hold a client with every scope, whose token the httpx client sends."""
    settings = databases.settings()
    registers = discover()
    clock = clock or SystemClock()
    pipeline = Pipeline(settings)
    try:
        pipeline.migrate()
    finally:
        pipeline.close()
    token = add_client(databases, f"test-all-{uuid.uuid4().hex[:8]}", *clients.known_scopes(registers))
    facades = FacadeDatabase(facade_url or settings.facade_database_url, clock)
    audit = Auditor(settings.service_database_url, clock)
    services = FacadeServices(facades, audit, rate[0], rate[1], idcards,
                              TestData(Pipeline(settings, clock), 30) if testdata else None,
                              NotificationService(settings.service_database_url, clock), credential_cache_s)
    health = HealthChecker(settings, registers, clock)
    port = free_port()
    server = WebServer(create_app(health, None, services, list(registers.values())), f"127.0.0.1:{port}")
    server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            yield Served(base, client, token, databases)
    finally:
        server.stop()
        facades.close()
        services.close()
        health.close()


@contextmanager
def serve_process(databases: Databases, log_dir: Path, wait_s: float = 30, **extra: str) -> Iterator[tuple[str, Path]]:
    """`stamdata-importer serve` as an operator runs it: a subprocess, answering; stopped with SIGTERM, which
    must end it with exit 0. Its output goes into pytest's capture (the suite-wide personal-data scan reads it)."""
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STAMDATA_")}
    environment.update(databases.environ(STAMDATA_LISTEN=f"127.0.0.1:{port}", **extra))
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "importer", "serve"], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            try:
                return httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert process.poll() is None, log_path.read_text()
                return False

        wait_for(answers, wait_s, "serve to answer")
        yield base, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        sys.stdout.write(log_path.read_text())
    assert code == 0, log_path.read_text()
