"""The register lock between importer hosts (importer/load/lease.py), on MariaDB: a holder that hangs loses it after
takeover_s, the next holder ends the hung one's open transaction, and a holder that lost its lock commits nothing.

A hang is played here by stopping the holder's keeper thread: its lock session then hears nothing, as from a host
that was SIGSTOPped (tests/replication/ stops real daemons)."""

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from importer.db import create_engine
from importer.load.lease import KeptSession
from importer.load.locks import LockLost, RegisterBusy, RegisterLocks
from tests.conftest import Databases
from tests.daemon.harness import wait_for

pytestmark = pytest.mark.mariadb

TAKEOVER_S = 2.0


@pytest.fixture
def engines(mariadb_databases: Databases) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two hosts' engines on the same production and preflight databases, with a table to write."""
    production = create_engine(mariadb_databases.production_url, timeout_s=30)
    preflight = create_engine(mariadb_databases.preflight_url, timeout_s=30)
    with production.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE written (id INT PRIMARY KEY)")
    try:
        yield production, preflight
    finally:
        production.dispose()
        preflight.dispose()


def hang(locks: RegisterLocks, register: str) -> None:
    """The holder's process stops: its keeper stops pinging (nothing else of it runs either)."""
    handle = next(handle for (_, name), (handle, _) in locks._held.items() if name == register)
    assert isinstance(handle, KeptSession)
    handle._stop.set()
    handle._keeper.join(5)


def rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT id FROM written ORDER BY id")]


def test_a_live_holder_keeps_the_register_past_takeover_s(engines: tuple[sa.Engine, sa.Engine]) -> None:
    production, preflight = engines
    first, second = (RegisterLocks(production, [preflight], TAKEOVER_S) for _ in range(2))
    with first.hold("autorisation", wait_s=0):
        began = time.monotonic()
        with pytest.raises(RegisterBusy):
            second.hold("autorisation", wait_s=TAKEOVER_S * 2).__enter__()
        assert time.monotonic() - began >= TAKEOVER_S * 2 - 0.5
        assert first.still_held("autorisation")
        with production.connect() as connection, first.fence(connection, "autorisation"):
            connection.exec_driver_sql("INSERT INTO written VALUES (1)")
            connection.commit()
    assert rows(production) == [1]
    with second.hold("autorisation", wait_s=0):  # released: the other host gets it at once
        assert second.still_held("autorisation")


def test_a_hung_holder_loses_the_register_and_its_open_transaction_and_commits_nothing(
    engines: tuple[sa.Engine, sa.Engine]
) -> None:
    production, preflight = engines
    hung, successor = RegisterLocks(production, [preflight], TAKEOVER_S), RegisterLocks(production, [preflight],
                                                                                        TAKEOVER_S)
    holding = hung.hold("autorisation", wait_s=0)
    holding.__enter__()
    writer = production.connect()
    fence = hung.fence(writer, "autorisation")
    fence.__enter__()  # half way through an import: the work lock held, a row written, nothing committed
    writer.exec_driver_sql("INSERT INTO written VALUES (1)")
    hang(hung, "autorisation")

    began = time.monotonic()
    taken = wait_for(lambda: _try(successor), 30, "the other host to take the register over", interval=0.2)
    assert time.monotonic() - began >= TAKEOVER_S / 2, "not before the lock session timed out"
    try:
        # The hung holder's transaction was ended (rolled back) before the successor read anything.
        assert rows(production) == []
        with production.connect() as connection, successor.fence(connection, "autorisation"):
            connection.exec_driver_sql("INSERT INTO written VALUES (2)")
            connection.commit()

        # The hung host wakes up: its transaction is gone, and it cannot start another.
        assert not hung.still_held("autorisation")
        with pytest.raises(sa.exc.DBAPIError):
            writer.exec_driver_sql("INSERT INTO written VALUES (3)")
            writer.commit()
        with pytest.raises(LockLost), production.connect() as connection, hung.fence(connection, "autorisation"):
            connection.exec_driver_sql("INSERT INTO written VALUES (4)")
            connection.commit()
        assert rows(production) == [2]
    finally:
        taken.__exit__(None, None, None)
        holding.__exit__(None, None, None)  # releasing a lost lock is quiet
        writer.invalidate()


def _try(locks: RegisterLocks) -> object:
    holding = locks.hold("autorisation", wait_s=0)
    try:
        holding.__enter__()
    except RegisterBusy:
        return None
    return holding


def test_the_lock_session_goes_back_to_the_pool_with_the_servers_wait_timeout(
    engines: tuple[sa.Engine, sa.Engine]
) -> None:
    production, preflight = engines
    locks = RegisterLocks(production, [preflight], TAKEOVER_S)
    with locks.hold("autorisation", wait_s=0):
        pass
    with production.connect() as connection:  # the pool hands the same session out again
        session, server = connection.exec_driver_sql("SELECT @@SESSION.wait_timeout, @@GLOBAL.wait_timeout").one()
    assert session == server
