"""The primary and replica these tests start themselves (tests/replication/servers.py), once per test module and
worker, and databases of a test's own on them."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Databases
from tests.replication.servers import Pair, primary_and_replica


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with primary_and_replica(tmp_path_factory.mktemp("mariadb-pair")) as started:
        yield started


def databases_on(pair: Pair, tmp_path: Path) -> Databases:
    """A preflight and a production database of this test's own on the primary (created by the importer's first
    migration), with the façade account (SELECT only) reading production."""
    stem = f"t{uuid.uuid4().hex[:8]}"
    primary = pair.primary
    return Databases("mariadb", primary.url(f"{stem}_pre"), primary.url(f"{stem}_prod"), tmp_path / "inbox",
                     pair.facade_url(primary, f"{stem}_prod"))
