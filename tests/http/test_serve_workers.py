"""`serve` with several worker processes (`http_workers`): one listening socket, the same answers from every
worker, every look-up audited, and a clean stop on SIGTERM."""

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from importer.config import load_settings
from importer.errors import UsageError
from importer.http.serve import listening_socket
from tests.conftest import Databases
from tests.http.server import add_client, import_sample, serve_process
from tests.http.test_audit_group_commit import _rows


def test_two_workers_give_the_same_answers_and_audit_every_look_up(sqlite_databases: Databases,
                                                                   tmp_path: Path) -> None:
    import_sample(sqlite_databases, tmp_path / "drops")
    token = add_client(sqlite_databases, "epj-workers", "lookup:autorisation", "feed:autorisation")
    headers = {"Authorization": f"Bearer {token}"}
    with serve_process(sqlite_databases, tmp_path, wait_s=120, STAMDATA_HTTP_WORKERS="2") as (base, log_path):
        deadline = time.monotonic() + 120
        while not all(f'"worker": {number}' in log_path.read_text() or f"worker={number}" in log_path.read_text()
                      for number in (0, 1)):
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        answers = set()
        for _ in range(30):  # a new connection each time: the kernel hands them to either worker
            person = httpx.get(f"{base}/autorisation/v1/persons/0101801234", headers=headers, timeout=30)
            assert person.status_code == 200, person.text
            answers.add(person.text)
            page = httpx.get(f"{base}/replication/autorisationsregisteret/autorisation/v1", timeout=30,
                             headers={**headers, "Accept": "application/json"})
            assert page.status_code == 200
            answers.add(page.text.split('"updated"')[0])
        assert len(answers) == 2, "every worker answers alike"
        assert len(_rows(sqlite_databases.production_url, "epj-workers")) == 30, "each look-up audited"


@pytest.mark.parametrize("value", ["0", "65", "1.5"])
def test_http_workers_is_a_whole_number_from_1_to_64(value: str) -> None:
    with pytest.raises(UsageError, match=r"(?i)http_workers"):
        load_settings(None, {"STAMDATA_HTTP_WORKERS": value})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_workers_socket_gives_connections_without_nagle(host: str) -> None:
    """asyncio turns Nagle's algorithm off only on connections of a socket that says IPPROTO_TCP; without it an
    answer written as head then body waited for the client's delayed ACK (about 40 ms a request)."""
    listener = listening_socket(host, 0)
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _reader, writer = await asyncio.open_connection(listener.getsockname()[0], port)
            while not seen:
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(asyncio.wait_for(accept_one(), 10))
    assert listener.proto == socket.IPPROTO_TCP
    assert seen == [1]
