"""The MariaDB servers the tests start never work in the system's temporary directory.

A starting `mariadbd` (mariadb-install-db's bootstrap too) deletes every `#sql*` file in its tmpdir as leftovers of
its own. In the shared /tmp those were the live internal temporary tables of the shared server on port 3306, which
then crashed (signal 11 in `ha_maria::drop_table`, under a `DESCRIBE`). See tests/replication/servers.py."""

from pathlib import Path

import pytest

from tests.replication.servers import Server, install_datadir

pytestmark = pytest.mark.replication


def test_a_starting_server_leaves_the_system_temporary_directory_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    # What another server's internal temporary table looks like there, while that server uses it.
    canaries = [system_tmp / "#sql-temptable-1f2e-3a-0.MAI", system_tmp / "#sql-temptable-1f2e-3a-0.MAD"]
    for canary in canaries:
        canary.write_bytes(b"in use")
    monkeypatch.setenv("TMPDIR", str(system_tmp))  # what the children would otherwise inherit as their tmpdir

    installed = install_datadir(tmp_path / "install")
    server = Server(tmp_path / "server", 1)
    server.base.mkdir()
    installed.rename(server.datadir)
    try:
        server.start()
        tmpdir = server.execute("SELECT @@GLOBAL.tmpdir AS tmpdir")[0]["tmpdir"]
        server.execute("CREATE DATABASE probe", "CREATE TABLE probe.t (a INT, b TEXT)", "DESCRIBE probe.t")
    finally:
        server.stop()
    assert [canary.exists() for canary in canaries] == [True, True], "a test's server deleted another's temp tables"
    assert Path(tmpdir).is_relative_to(server.base), tmpdir
