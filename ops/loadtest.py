#!/usr/bin/env python3
"""Load test of the façades: look-ups and the replication feed against the real server, over real HTTP.

    python ops/loadtest.py [--rows 200000] [--db mysql+pymysql://root@127.0.0.1/ | --db sqlite]
                           [--workers N] [--connections 32] [--duration 10] [--feed-clients 20]

Sets up everything itself and removes it afterwards: a synthetic autorisation dump of N rows (the generator of
ops/bench.py) imported through the project's own pipeline (`stamdata-importer import`) into fresh databases (on
MariaDB/MySQL two databases it creates and drops), a client holding `feed:autorisation` and
`lookup:autorisation` (`stamdata-importer clients add`), and the server itself, `stamdata-importer serve`, as a
process of its own on a free port (rate limits raised out of the way: the bucket is not what is measured). Then:

- look-ups: wrk at `--connections` connections for `--duration` seconds (after `--warmup` seconds not measured),
  half `GET /autorisation/v1/persons/{cpr}`, half `GET /autorisation/v1/authorisations/{nr}`, ids drawn at random
  from the dump (every one audited);
- the feed, one client paging the whole view with maxRecords=2000 as JSON, then as Atom, then through SOAP
  `replicate` (best of `--feed-passes` passes each);
- `--feed-clients` replicating clients at once (processes, JSON pages of 2000), each starting at its own place in
  the view and starting over when caught up, for `--duration` seconds: each one's rows a second.

The feed clients do little work per page (they count entries and find the next token in the bytes, never parse
the document): `feed_client_cpu_share` is the client's CPU time over the wall time of the single-client passes,
the share of a core the load generator itself took. Prints one JSON object; exits non-zero when an answer was not
a success (a look-up that is not 200, a page that is not whole).
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ops"))

import bench  # noqa: E402  (ops/bench.py: the same synthetic dumps)

VIEW = "autorisationsregisteret/autorisation/v1"
PAGE = 2000
SOAP_PATH = "/stamdata-batch-copy-ws/service/StamdataReplication"
SOAP_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<ReplicationRequest xmlns="http://nsi.dk/2011/10/21/StamdataKrs/">'
    "<register>autorisationsregisteret</register><datatype>autorisation</datatype><version>1</version>"
    "<offset>{offset}</offset><maxRecords>{size}</maxRecords></ReplicationRequest></soap:Body></soap:Envelope>"
)
_JSON_NEXT = re.compile(rb'"next": ?"([0-9]+)"')
_ATOM_ID = re.compile(rb"<entry><id>[^<]*/([0-9]{20})</id>")

WRK_SCRIPT = r"""
local paths = {}
for line in io.lines(os.getenv("LOADTEST_PATHS")) do paths[#paths + 1] = line end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919)
end
function init(args)
  math.randomseed(seed)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'LOADTEST {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
"""


# --- Set-up ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run([sys.executable, "-m", "importer", *args], env=env, cwd=REPO, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"stamdata-importer {' '.join(args[:2])} failed ({completed.returncode}):\n"
                         f"{completed.stderr[-3000:]}")
    return completed.stdout


@contextmanager
def databases(db: str, workdir: Path) -> Iterator[tuple[str, str]]:
    if db == "sqlite":
        yield f"sqlite:///{workdir}/preflight.sqlite", f"sqlite:///{workdir}/production.sqlite"
        return
    with bench.database_pair(db, workdir, f"load_{uuid.uuid4().hex[:6]}") as pair:
        yield pair


@contextmanager
def server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "importer", "serve"], env=env, cwd=REPO,
                                   stdout=output, stderr=output, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server stopped ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/status")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not answer within 60 s") from None
                time.sleep(0.2)
        yield process
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


# --- Look-ups ----------------------------------------------------------------------------------------------

def lookups(port: int, token: str, lines: list[str], workdir: Path, connections: int, threads: int,
            duration: float, warmup: float) -> dict[str, Any]:
    rng = random.Random(20261202)
    sample = rng.sample(lines, min(len(lines), 40_000))
    paths = []
    for index, line in enumerate(sample):
        number, cpr = line.split(";")[:2]
        paths.append(f"/autorisation/v1/persons/{cpr}" if index % 2 else f"/autorisation/v1/authorisations/{number}")
    (workdir / "paths.txt").write_text("\n".join(paths) + "\n")
    (workdir / "lookups.lua").write_text(WRK_SCRIPT)
    def command(seconds: float) -> list[str]:
        return ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
                "-H", f"Authorization: Bearer {token}", "-s", str(workdir / "lookups.lua"), f"http://127.0.0.1:{port}"]

    environment = {**os.environ, "LOADTEST_PATHS": str(workdir / "paths.txt")}
    if warmup > 0:  # not measured: the server opens its pooled connections, the database warms its pages
        subprocess.run(command(warmup), env=environment, capture_output=True, text=True, check=False)
    completed = subprocess.run(command(duration), env=environment, capture_output=True, text=True, check=False)
    found = [line for line in completed.stdout.splitlines() if line.startswith("LOADTEST ")]
    if completed.returncode != 0 or not found:
        raise SystemExit(f"wrk failed:\n{completed.stdout}\n{completed.stderr}")
    result: dict[str, Any] = json.loads(found[-1].removeprefix("LOADTEST "))
    return result


# --- The feed ----------------------------------------------------------------------------------------------

class FeedClient:
    """One replicating client on one keep-alive connection, paging as a copy would; counts, never parses."""

    def __init__(self, port: int, token: str, kind: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token = token
        self.kind = kind

    def page(self, offset: str) -> tuple[int, str]:
        """(rows on the page, the token to ask after next)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.kind == "soap":
            headers.update({"Content-Type": "text/xml; charset=utf-8",
                            "SOAPAction": '"http://nsi.dk/2011/10/21/StamdataKrs/replicate"'})
            self.connection.request("POST", SOAP_PATH, SOAP_ENVELOPE.format(offset=offset, size=PAGE), headers)
        else:
            headers["Accept"] = "application/json" if self.kind == "json" else "application/atom+xml"
            self.connection.request("GET", f"/replication/{VIEW}?offset={offset}&maxRecords={PAGE}", headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.kind} page after {offset}: HTTP {response.status}: {body[:300]!r}")
        if self.kind == "json":
            rows = body.count(b'"token": "') + body.count(b'"token":"')
            match = _JSON_NEXT.search(body)
            if match is None:
                raise RuntimeError("a JSON page without next")
            return rows, match.group(1).decode()
        rows = body.count(b"<entry>")
        if rows == 0:
            return 0, offset
        last = _ATOM_ID.search(body, body.rfind(b"<entry><id>"))
        if last is None:
            raise RuntimeError("an Atom entry without a token")
        return rows, last.group(1).decode()

    def close(self) -> None:
        self.connection.close()


def replicate_all(port: int, token: str, kind: str) -> dict[str, Any]:
    """One whole pass from the start until an empty page: rows, seconds, the client's CPU seconds, page tokens."""
    client = FeedClient(port, token, kind)
    offset, rows, tokens = "0", 0, []
    began, cpu = time.perf_counter(), time.process_time()
    while True:
        count, offset = client.page(offset)
        if count == 0:
            break
        rows += count
        tokens.append(offset)
    seconds = time.perf_counter() - began
    client.close()
    return {"rows": rows, "seconds": seconds, "cpu_s": time.process_time() - cpu, "tokens": tokens}


def _concurrent_client(arguments: tuple[int, str, str, float, float]) -> dict[str, float]:
    port, token, start, begin_at, duration = arguments
    client = FeedClient(port, token, "json")
    while time.time() < begin_at:
        time.sleep(0.001)
    offset, rows, pages = start, 0, 0
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        count, offset = client.page(offset)
        if count == 0:
            offset = "0"  # caught up: start over, as a new copy would
            continue
        rows += count
        pages += 1
    seconds = time.perf_counter() - began
    client.close()
    return {"rows": rows, "pages": pages, "seconds": seconds}


def concurrent_feed(port: int, token: str, tokens: list[str], clients: int, duration: float) -> list[dict[str, float]]:
    starts = ["0", *tokens][:: max(1, (len(tokens) + 1) // clients)]
    starts = (starts * clients)[:clients]
    begin_at = time.time() + 1.0
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        return pool.map(_concurrent_client, [(port, token, start, begin_at, duration) for start in starts])


# --- Main --------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--db", default="mysql+pymysql://root@127.0.0.1/", help="'sqlite' or a MariaDB/MySQL URL")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="HTTP worker processes (http_workers; default one per core, as README advises for a "
                             "host that serves load)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each timed load")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of look-ups before the measured ones")
    parser.add_argument("--feed-clients", type=int, default=20)
    parser.add_argument("--feed-passes", type=int, default=2, help="whole passes of each single-client feed test")
    parser.add_argument("--skip", action="append", default=[], choices=["lookups", "feed", "soap", "concurrent"])
    args = parser.parse_args()
    if shutil.which("wrk") is None and "lookups" not in args.skip:
        raise SystemExit("wrk is needed for the look-ups (apt-get install wrk), or --skip lookups")

    with tempfile.TemporaryDirectory(prefix="stamdata-load-") as tmp:
        workdir = Path(tmp)
        today = datetime.now(UTC).strftime("%Y%m%d")
        lines = bench.make_dumps(args.rows).first
        dump = bench.write(workdir / f"{today}AutDK.csv", lines)
        with databases(args.db, workdir) as (preflight, production):
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(REPO), "STAMDATA_PREFLIGHT_URL": preflight,
                   "STAMDATA_PRODUCTION_URL": production, "STAMDATA_STATE_DIR": str(workdir / "state"),
                   "STAMDATA_INBOX": str(workdir / "inbox"), "STAMDATA_LISTEN": f"127.0.0.1:{port}",
                   "STAMDATA_LOG_LEVEL": "info", "STAMDATA_AUTORISATION_REDUCTION_GUARD": str(10**9),
                   "STAMDATA_RATE_LIMIT_PER_S": "1000000", "STAMDATA_RATE_LIMIT_BURST": "1000000",
                   "STAMDATA_ALLOW_WRITABLE_FACADE": "true"}
            env["STAMDATA_HTTP_WORKERS"] = str(args.workers)
            began = time.perf_counter()
            cli(env, "import", "autorisation", str(dump))
            import_s = time.perf_counter() - began
            token = cli(env, "clients", "add", "loadtest", "--scope", "feed:autorisation",
                        "--scope", "lookup:autorisation").strip().splitlines()[-1]
            version = cli(env, "--version").strip()
            result: dict[str, Any] = {
                "database": "sqlite" if args.db == "sqlite" else sa.make_url(args.db).get_backend_name(),
                "server_version": version, "commit": _commit(), "rows": args.rows,
                "workers": args.workers, "connections": args.connections, "wrk_threads": args.threads,
                "duration_s": args.duration, "warmup_s": args.warmup, "feed_clients": args.feed_clients, "page": PAGE,
                "import_s": round(import_s, 1), "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
            }
            with server(env, port, workdir / "server.log") as process:
                result["server_pid"] = process.pid
                if "lookups" not in args.skip:
                    answer = lookups(port, token, lines[:-3], workdir, args.connections, args.threads,
                                     args.duration, args.warmup)
                    result.update(
                        lookup_rps=round(answer["requests"] / (answer["duration_us"] / 1e6), 1),
                        **{f"lookup_{name}_ms": round(answer[f"{name}_us"] / 1000, 2)
                           for name in ("p50", "p90", "p99", "max")},
                        lookup_requests=answer["requests"],
                        lookup_errors={key: answer[key] for key in ("connect_errors", "read_errors", "write_errors",
                                                                    "status_errors", "timeouts")},
                    )
                tokens: list[str] = []
                client_cpu, client_wall = 0.0, 0.0
                kinds = ([] if "feed" in args.skip else ["json", "atom"]) + ([] if "soap" in args.skip else ["soap"])
                for kind in kinds:
                    passes = [replicate_all(port, token, kind) for _ in range(args.feed_passes)]
                    for one in passes:
                        if one["rows"] != args.rows:
                            raise SystemExit(f"the {kind} feed gave {one['rows']} rows, not {args.rows}")
                        client_cpu += one["cpu_s"]
                        client_wall += one["seconds"]
                    rates = sorted(one["rows"] / one["seconds"] for one in passes)
                    name = {"json": "feed_json", "atom": "feed_atom", "soap": "soap_replicate"}[kind]
                    result[f"{name}_rows_per_s"] = round(rates[-1])
                    result[f"{name}_rows_per_s_runs"] = [round(rate) for rate in rates]
                    tokens = tokens or passes[0]["tokens"]
                if client_wall:
                    result["feed_client_cpu_share"] = round(client_cpu / client_wall, 3)
                if "concurrent" not in args.skip and args.feed_clients > 0:
                    if not tokens:
                        tokens = replicate_all(port, token, "json")["tokens"]
                    each = concurrent_feed(port, token, tokens, args.feed_clients, args.duration)
                    rates = [one["rows"] / one["seconds"] for one in each]
                    result.update(feed_concurrent_min_rows_per_s=round(min(rates)),
                                  feed_concurrent_median_rows_per_s=round(sorted(rates)[len(rates) // 2]),
                                  feed_concurrent_total_rows_per_s=round(sum(rates)))
                result["server_alive"] = process.poll() is None
            result["load_after"] = os.getloadavg()[0]
            print(json.dumps(result))
            errors = result.get("lookup_errors", {})
            if any(errors.values()):
                raise SystemExit(f"look-ups failed: {errors}")


def _commit() -> str | None:
    completed = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                               check=False)
    return completed.stdout.strip() or None


if __name__ == "__main__":
    main()
