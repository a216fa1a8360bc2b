#!/usr/bin/env python3
"""Benchmark of the autorisation import against the schema floor, the plain-table floor and a row-at-a-time
reference.

    python ops/bench.py [--rows 1000000] [--db mariadb | --db sqlite | --db mysql+pymysql://root@127.0.0.1/]
                        [--buffer-pool 1G] [--log-file-size 512M] [--flush-log-at-trx-commit 1]

`--db mariadb` (the default) installs and starts a MariaDB server of its own (`mariadb-install-db` into a
temporary data directory, its own port and socket) sized as production would be: a buffer pool that holds the
register's tables, a redo log that absorbs a whole import, every commit flushed. A URL names an existing
server instead (its own settings are reported). Generates a synthetic dump of N rows (Danish letters, shared
CPR numbers, the special numbers) and a next-day dump (1 % changed, 0.1 % removed, 0.1 % added), then
measures on the same server:

- initial_s      the full import of the first dump into empty (migrated) databases, preflight + production;
- delta_s        the import of the next-day dump;
- schema_floor_s the fastest native load of the initial import's final rows into the project's own migrated
                 tables (Autorisation2 and autreg2, both databases): pre-sorted, complete rows, one
                 transaction a database; LOAD DATA LOCAL INFILE in InnoDB's bulk mode (empty tables, unique
                 and foreign-key checks off) on MariaDB/MySQL, one executemany a table on SQLite;
- floor_s        the first file into an equivalent plain table (the file's five columns, no indexes) in both
                 databases, by the same native paths;
- rowwise_s      one SELECT plus INSERT/UPDATE per record, as the original Java importer did, on a 20,000-row
                 sample into both databases, scaled to N; rowwise_delta_s the same for the next-day dump
                 against the sample already loaded (one SELECT per record, a close and an insert per change,
                 a close per removed key);
- peak_rss_mb    the larger peak resident memory of the two import processes.

Each import runs in a child process so that its memory is its own. Prints one JSON object (with the server's
settings and the machine's load) and exits non-zero if the delta wrote other than exactly the rows it requires
(changed x2 + removed + added), counted in both databases.
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from importer.db import create_engine  # noqa: E402

ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
SPACE = 36**5
STRIDE = 20_000_003  # prime, so i -> i * STRIDE mod 36^5 is a bijection: unique, scattered numbers
SURNAMES = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
            "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen",
            "Ærø-Holm", "Østergaard", "Løkke Rasmussen", "Bæk", "Dahl-Åberg", "Frøslev"]
GIVEN = ["Anne", "Mette", "Kirsten", "Hanne", "Peter", "Jens", "Lars", "Søren", "Jørgen", "Ærtemis",
         "Øjvind", "Åse", "Anne Marie", "Niels Peter", "Karen Margrethe", "Bjørn"]
EDUCATION = ["7170", "5166", "5433", "5151", "5152", "5153", "5159", "5175", "5265", "5431", "4498"]
SPECIALS = [
    "09YM8;0101010001;;Indberettet af apotek, ej autorisationsnummer;0000",
    "09YM9;0101010001;;Indberettet af farmaceut/farmakonom, ej autorisationsnummer;0000",
    "09YMB;0101010001;;Medicin købt i andre EU/EØS-lande, registreret af Lægemiddelstyrelsen;0000",
]
SAMPLE = 20_000  # rows of the row-at-a-time reference (--rowwise-sample)


# --- Synthetic dumps --------------------------------------------------------------------------------------

def numbers(indexes: np.ndarray) -> np.ndarray:
    values = (indexes.astype(np.int64) * STRIDE) % SPACE
    digits = [ALPHABET[(values // 36**power) % 36] for power in range(4, -1, -1)]
    return np.char.add(np.char.add(np.char.add(np.char.add(digits[0], digits[1]), digits[2]), digits[3]), digits[4])


@dataclass
class Dumps:
    first: list[str]
    second: list[str]
    changed: int
    removed: int
    added: int


def make_dumps(rows: int, seed: int = 20261122) -> Dumps:
    rng = np.random.default_rng(seed)
    count = rows - len(SPECIALS)
    keys = numbers(np.arange(count))
    pool = np.char.add(
        np.char.add(np.char.zfill(rng.integers(1, 29, count).astype(str), 2),
                    np.char.zfill(rng.integers(1, 13, count).astype(str), 2)),
        np.char.zfill(rng.integers(0, 1_000_000, count).astype(str), 6),
    )
    cprs = pool[rng.integers(0, int(count * 0.85), count)]  # shared CPRs: several authorisations a person
    surnames = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), count)]
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), count)]
    codes = np.array(EDUCATION)[rng.integers(0, len(EDUCATION), count)]
    first = [";".join(fields) for fields in zip(keys, cprs, surnames, given, codes, strict=True)] + SPECIALS

    order = rng.permutation(count)
    changed = order[: count // 100]
    removed = order[count // 100 : count // 100 + count // 1000]
    added = count // 1000
    second_codes = codes.copy()
    second_codes[changed] = np.where(codes[changed] == "7170", "5166", "7170")
    keep = np.ones(count, dtype=bool)
    keep[removed] = False
    second = [";".join(fields) for fields in zip(keys[keep], cprs[keep], surnames[keep], given[keep],
                                                   second_codes[keep], strict=True)]
    new_keys = numbers(np.arange(count, count + added))
    second += [f"{key};{cpr};Nyholm;Ny Person;5166" for key, cpr in zip(new_keys, pool[:added], strict=True)]
    return Dumps(first, second + SPECIALS, changed=len(changed), removed=len(removed), added=added)


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("iso-8859-15"))
    return path


# --- Databases --------------------------------------------------------------------------------------------

SERVER_SETTINGS = ("version", "innodb_buffer_pool_size", "innodb_log_file_size", "innodb_log_buffer_size",
                   "innodb_flush_log_at_trx_commit", "innodb_flush_method", "innodb_doublewrite", "log_bin",
                   "sync_binlog")


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path("/usr/sbin", name).exists() else None)
    if found is None:
        raise SystemExit(f"MariaDB binary {name} not found: install mariadb-server, or name a server with --db")
    return found


@contextmanager
def own_server(workdir: Path, buffer_pool: str, log_file_size: str, flush: int) -> Iterator[str]:
    """A MariaDB server of the benchmark's own, sized as production would be; its URL (root, no password)."""
    base = workdir / "mariadb"
    datadir = base / "data"
    base.mkdir()
    installed = subprocess.run(
        [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if installed.returncode != 0:
        raise SystemExit(f"mariadb-install-db failed: {installed.stderr[-2000:]}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [_binary("mariadbd"), "--no-defaults", f"--datadir={datadir}", f"--socket={base / 'sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve", "--skip-log-bin",
         f"--innodb-buffer-pool-size={buffer_pool}", f"--innodb-log-file-size={log_file_size}",
         f"--innodb-flush-log-at-trx-commit={flush}", "--max-allowed-packet=64M",
         f"--pid-file={base / 'pid'}", f"--log-error={base / 'error.log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"mysql+pymysql://root@127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"mariadbd exited: {(base / 'error.log').read_text(errors='replace')[-2000:]}")
            engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
            try:
                with engine.connect():
                    break
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise SystemExit("the benchmark's MariaDB did not start within 120 s") from None
                time.sleep(0.2)
            finally:
                engine.dispose()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGKILL)
            process.wait(30)


def server_settings(db: str) -> dict[str, Any]:
    if db == "sqlite":
        import sqlite3

        return {"sqlite_version": sqlite3.sqlite_version, "journal_mode": "wal", "synchronous": "full"}
    engine = sa.create_engine(db)
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT " + ", ".join(f"@@GLOBAL.{name}" for name in SERVER_SETTINGS)).one()
    finally:
        engine.dispose()
    settings = dict(zip(SERVER_SETTINGS, row, strict=True))
    for name in ("innodb_buffer_pool_size", "innodb_log_file_size", "innodb_log_buffer_size"):
        settings[name.replace("_size", "_mb")] = int(settings.pop(name)) // 2**20
    return settings


@contextmanager
def database_pair(db: str, workdir: Path, tag: str) -> Iterator[tuple[str, str]]:
    if db == "sqlite":
        yield f"sqlite:///{workdir}/{tag}-preflight.sqlite", f"sqlite:///{workdir}/{tag}-production.sqlite"
        for name in ("preflight", "production"):
            for suffix in ("", "-wal", "-shm"):
                (workdir / f"{tag}-{name}.sqlite{suffix}").unlink(missing_ok=True)
        return
    server = sa.create_engine(db)
    stem = f"stamdata_bench_{tag}_{uuid.uuid4().hex[:8]}"
    names = [f"{stem}_pre", f"{stem}_prod"]
    with server.begin() as connection:
        for name in names:
            connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        base = db.rstrip("/")
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with server.begin() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        server.dispose()


# --- Measurements -----------------------------------------------------------------------------------------

def child_import(preflight: str, production: str, dump: Path, state: Path) -> dict[str, Any]:
    """Run one import in a fresh process; it reports its own duration and peak memory."""
    env = {**os.environ, "STAMDATA_PREFLIGHT_URL": preflight, "STAMDATA_PRODUCTION_URL": production,
           "STAMDATA_STATE_DIR": str(state),
           "STAMDATA_AUTORISATION_REDUCTION_GUARD": str(10**9), "STAMDATA_LOG_LEVEL": "warning"}
    completed = subprocess.run([sys.executable, __file__, "--child", str(dump)], env=env, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"import of {dump.name} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not getrusage's ru_maxrss: Linux carries that across
    fork and exec, so a child would report the (large) benchmark parent's memory as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best available


def run_child(dump: Path) -> None:
    from importer.config import load_settings
    from importer.load.pipeline import Pipeline
    from importer.logs import configure_logging
    from registers.autorisation import REGISTER

    settings = load_settings()
    configure_logging("warning", json=True)
    pipeline = Pipeline(settings)
    pipeline.migrate()
    began = time.perf_counter()
    summary = pipeline.import_dataset(REGISTER, dump)
    seconds = time.perf_counter() - began
    pipeline.close()
    counts = summary.counts
    print(json.dumps({
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "inserted": counts.inserted, "updated": counts.updated, "closed": counts.closed,
        "unchanged": counts.unchanged, "timings": summary.timings,
        "transaction_time": summary.transaction_time.strftime("%Y-%m-%d %H:%M:%S"),
    }))


def rows_stamped(urls: tuple[str, str], transaction_time: str) -> list[dict[str, int]]:
    """In each database: the rows of Autorisation2 the import stamped (inserted or closed), and autreg2's size."""
    counts = []
    for url in urls:
        engine = create_engine(url)
        with engine.connect() as connection:
            stamped = connection.execute(sa.text("SELECT COUNT(*) FROM Autorisation2 WHERE ModifiedDate = :t"),
                                         {"t": transaction_time}).scalar_one()
            current = connection.exec_driver_sql("SELECT COUNT(*) FROM autreg2").scalar_one()
        engine.dispose()
        counts.append({"stamped": int(stamped), "autreg2": int(current)})
    return counts


def _load_file(connection: sa.Connection, path: Path, table: str, charset: str, separator: str) -> int:
    sep = "\\t" if separator == "\t" else separator
    result = connection.exec_driver_sql(
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET {charset} "
        f"FIELDS TERMINATED BY '{sep}' ESCAPED BY '' LINES TERMINATED BY '\\n'"
    )
    return int(result.rowcount)


def _sqlite_inserts(engine: sa.Engine, loads: list[tuple[str, Iterable[tuple[Any, ...]]]]) -> float:
    """The seconds SQLite takes for `loads` (statement, rows) in one transaction, straight through the driver."""
    raw = engine.raw_connection()
    cursor: Any = raw.cursor()  # sqlite3 takes any iterable of rows
    began = time.perf_counter()
    cursor.execute("BEGIN IMMEDIATE")
    for statement, rows in loads:
        cursor.executemany(statement, rows)
    raw.commit()
    seconds = time.perf_counter() - began
    raw.close()
    return seconds


def floor(db: str, workdir: Path, dump: Path) -> float:
    """The native bulk path into a plain table with the file's five columns, in both databases."""
    ddl = ("CREATE TABLE bench_floor (Autorisationsnummer CHAR(5) NOT NULL, CPR CHAR(10) NOT NULL, "
           "Efternavn VARCHAR(100) NOT NULL, Fornavn VARCHAR(100) NOT NULL, UddannelsesKode VARCHAR(4) NOT NULL)")
    total = 0.0
    with database_pair(db, workdir, "floor") as urls:
        for url in urls:
            engine = create_engine(url)
            with engine.begin() as connection:
                connection.exec_driver_sql(ddl + (" ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                                                  if db != "sqlite" else ""))
            if db == "sqlite":
                rows = [tuple(line.split(";")) for line in dump.read_text("iso-8859-15").splitlines()]
                total += _sqlite_inserts(engine, [("INSERT INTO bench_floor VALUES (?, ?, ?, ?, ?)", rows)])
            else:
                began = time.perf_counter()
                with engine.begin() as connection:
                    loaded = _load_file(connection, dump, "bench_floor", "latin1", ";")
                total += time.perf_counter() - began
                assert loaded == len(dump.read_bytes().splitlines()), f"floor loaded {loaded} rows"
            engine.dispose()
    return total


def final_rows(lines: list[str], stamp: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """The rows an initial import leaves: Autorisation2 (PIDs given in key order) and autreg2, both in PID order."""
    open_end = "2999-12-31 00:00:00"
    fields = sorted((line.split(";") for line in lines), key=lambda row: row[0])
    history: list[tuple[str, ...]] = [(str(pid), number, cpr, given, surname, code, stamp, stamp, stamp, open_end)
               for pid, (number, cpr, surname, given, code) in enumerate(fields, start=1)]
    current: list[tuple[str, ...]] = [(str(pid), cpr, given, surname, number, code)
               for pid, (number, cpr, surname, given, code) in enumerate(fields, start=1)]
    return history, current


def schema_floor(db: str, workdir: Path, lines: list[str]) -> float:
    """The initial import's final rows, loaded natively into the project's migrated tables in both databases."""
    from importer.load import migrate

    history, current = final_rows(lines, "2026-11-21 00:00:00")
    files = {}
    for table, rows in (("Autorisation2", history), ("autreg2", current)):
        path = workdir / f"schema-floor-{table}.tsv"
        path.write_bytes(("\n".join("\t".join(row) for row in rows) + "\n").encode("utf-8"))
        files[table] = path
    total = 0.0
    with database_pair(db, workdir, "schema") as urls:
        for url in urls:
            engine = create_engine(url)
            migrate.upgrade(engine)
            if db == "sqlite":
                total += _sqlite_inserts(engine, [
                    (f"INSERT INTO Autorisation2 VALUES ({', '.join('?' * 10)})",
                     ((int(row[0]), *row[1:]) for row in history)),
                    (f"INSERT INTO autreg2 VALUES ({', '.join('?' * 6)})",
                     ((int(row[0]), *row[1:]) for row in current)),
                ])
            else:
                began = time.perf_counter()
                with engine.begin() as connection:
                    connection.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
                    for table, path in files.items():
                        loaded = _load_file(connection, path, table, "utf8mb4", "\t")
                        assert loaded == len(history), f"schema floor loaded {loaded} rows into {table}"
                total += time.perf_counter() - began
            engine.dispose()
    for path in files.values():
        path.unlink()
    return total


def _rowwise_statements(db: str) -> tuple[str, str, str]:
    from registers.autorisation.tables import autorisation2

    table = autorisation2.name
    mark = "?" if db == "sqlite" else "%s"
    select = (f"SELECT AutorisationPID, CPR, Efternavn, Fornavn, UddannelsesKode FROM {table} "
              f"WHERE Autorisationsnummer = {mark} AND ValidTo = {mark}")
    close = f"UPDATE {table} SET ValidTo = {mark}, ModifiedDate = {mark} WHERE AutorisationPID = {mark}"
    insert = (f"INSERT INTO {table} (Autorisationsnummer, CPR, Efternavn, Fornavn, UddannelsesKode, "
              f"CreatedDate, ModifiedDate, ValidFrom, ValidTo) VALUES ({', '.join([mark] * 9)})")
    return select, close, insert


def _rowwise_pass(db: str, cursor: Any, sample: list[list[str]], removed: list[str], stamp: str) -> None:
    select, close, insert = _rowwise_statements(db)
    open_end = "2999-12-31 00:00:00"
    if db == "sqlite":
        cursor.execute("BEGIN")
    for number, cpr, surname, given, code in sample:
        cursor.execute(select, (number, open_end))
        current = cursor.fetchone()
        if current is not None and tuple(current[1:]) == (cpr, surname, given, code):
            continue
        if current is not None:
            cursor.execute(close, (stamp, stamp, current[0]))
        cursor.execute(insert, (number, cpr, surname, given, code, stamp, stamp, stamp, open_end))
    for number in removed:
        cursor.execute(select, (number, open_end))
        current = cursor.fetchone()
        if current is not None:
            cursor.execute(close, (stamp, stamp, current[0]))


def rowwise(db: str, workdir: Path, first: list[str], second: list[str], rows: int,
            size: int = SAMPLE) -> tuple[float, float]:
    """One SELECT and one INSERT or UPDATE per record, as the original importer did, on a sample of the first
    dump (into empty tables) and then of the next-day dump (the same keys, and its share of the added ones);
    both scaled to N."""
    from importer.load import migrate

    sample = [line.split(";") for line in first[:size]]
    keys = {fields[0] for fields in sample}
    first_keys = {line.split(";", 1)[0] for line in first}
    later = [line.split(";") for line in second]
    added = [fields for fields in later if fields[0] not in first_keys]
    next_sample = [fields for fields in later if fields[0] in keys] + added[: len(added) * len(sample) // rows]
    removed = sorted(keys - {fields[0] for fields in later})
    initial = delta = 0.0
    with database_pair(db, workdir, "rowwise") as urls:
        for url in urls:
            engine = create_engine(url)
            migrate.upgrade(engine)
            raw = engine.raw_connection()
            cursor = raw.cursor()
            began = time.perf_counter()
            _rowwise_pass(db, cursor, sample, [], "2026-11-21 00:00:00")
            raw.commit()
            initial += time.perf_counter() - began
            began = time.perf_counter()
            _rowwise_pass(db, cursor, next_sample, removed, "2026-11-22 00:00:00")
            raw.commit()
            delta += time.perf_counter() - began
            raw.close()
            engine.dispose()
    return initial * rows / len(sample), delta * rows / len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="mariadb",
                        help="'mariadb' (a server of the benchmark's own), 'sqlite', or a MariaDB/MySQL server URL")
    parser.add_argument("--buffer-pool", default="1G", help="innodb_buffer_pool_size of the benchmark's own server")
    parser.add_argument("--log-file-size", default="512M", help="innodb_log_file_size of its own server")
    parser.add_argument("--flush-log-at-trx-commit", type=int, default=1, choices=(0, 1, 2),
                        help="innodb_flush_log_at_trx_commit of its own server (1: every commit durable)")
    parser.add_argument("--rowwise-sample", type=int, default=SAMPLE, help="records of the row-at-a-time reference")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child)
        return

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stamdata-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        db = args.db
        if db == "mariadb":
            db = stack.enter_context(own_server(workdir, args.buffer_pool, args.log_file_size,
                                                args.flush_log_at_trx_commit))
        settings = server_settings(db)
        dumps = make_dumps(args.rows)
        first = write(workdir / "20261121AutDK.csv", dumps.first)
        second = write(workdir / "20261122AutDK.csv", dumps.second)

        with database_pair(db, workdir, "import") as (preflight, production):
            initial = child_import(preflight, production, first, workdir / "state")
            delta = child_import(preflight, production, second, workdir / "state")
            stamped = rows_stamped((preflight, production), delta["transaction_time"])
        schema_floor_s = schema_floor(db, workdir, dumps.first)
        floor_s = floor(db, workdir, first)
        rowwise_s, rowwise_delta_s = rowwise(db, workdir, dumps.first, dumps.second, args.rows,
                                               args.rowwise_sample)

    expected = 2 * dumps.changed + dumps.removed + dumps.added
    written = delta["inserted"] + 2 * delta["updated"] + delta["closed"]
    current = args.rows - dumps.removed + dumps.added
    exact = (written == expected and delta["updated"] == dumps.changed and delta["closed"] == dumps.removed
             and all(count == {"stamped": expected, "autreg2": current} for count in stamped))
    result = {
        "db": "sqlite" if db == "sqlite" else sa.make_url(db).get_backend_name(),
        "server": "own" if args.db == "mariadb" else ("given" if args.db != "sqlite" else "embedded"),
        "settings": settings,
        "rows": args.rows,
        "cpus": os.cpu_count(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "schema_floor_s": round(schema_floor_s, 2),
        "initial_s": round(initial["seconds"], 2),
        "delta_s": round(delta["seconds"], 2),
        "initial_vs_schema_floor": round(initial["seconds"] / schema_floor_s, 2),
        "delta_vs_schema_floor": round(delta["seconds"] / schema_floor_s, 3),
        "floor_s": round(floor_s, 2),
        "initial_vs_floor": round(initial["seconds"] / floor_s, 2),
        "delta_vs_floor": round(delta["seconds"] / floor_s, 2),
        "rowwise_s": round(rowwise_s, 2),
        "rowwise_delta_s": round(rowwise_delta_s, 2),
        "speedup_vs_rowwise": round(rowwise_s / initial["seconds"], 1),
        "delta_speedup_vs_rowwise": round(rowwise_delta_s / delta["seconds"], 1),
        "peak_rss_mb": round(max(initial["rss_mb"], delta["rss_mb"]), 1),
        "initial_rss_mb": round(initial["rss_mb"], 1),
        "delta_rss_mb": round(delta["rss_mb"], 1),
        "rows_written_delta": written,
        "rows_stamped_delta": [count["stamped"] for count in stamped],
        "changed_rows": dumps.changed + dumps.removed + dumps.added,
        "expected_rows_written_delta": expected,
        "initial_stages_s": {k: round(v, 2) for k, v in initial["timings"].items()},
        "delta_stages_s": {k: round(v, 2) for k, v in delta["timings"].items()},
    }
    print(json.dumps(result))
    if not exact:
        raise SystemExit(f"the delta wrote {written} rows ({stamped} in the databases), it requires {expected}")


if __name__ == "__main__":
    main()
