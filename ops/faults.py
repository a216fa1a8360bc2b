#!/usr/bin/env python3
"""The fault suite: the real daemon against SQLite and a private MariaDB while things go wrong.

    python ops/faults.py [--quick] [--backend sqlite|mariadb|both] [--kill-trials N] [--seed S]
                         [--scenario kill|migration|outage|disk_full|two_daemons ...] [--keep]

Scenarios (see README, "Fault suite"):

- kill        kill -9 of the daemon aimed at each stage (parse, preflight, production, archive) and at random
              instants, over day-to-day dumps; restart, let it finish, check the end state after every trial;
- migration   kill -9 within the first second(s) of a daemon on fresh, empty databases, then a full start;
- outage      the private MariaDB killed, SIGTERMed or SIGSTOPped during preflight, during production and
              at start-up; /status must answer red meanwhile, nothing may lock, the dataset must arrive once;
- disk_full   a full state directory, a full inbox/archive and a full TMPDIR (small tmpfs mounts);
- two_daemons two daemons on one inbox and one pair of databases, with `replay` racing them.

Prints exactly one JSON line (the figures) on stdout, progress on stderr, and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_kit import (  # the helper module next to this script
    REPO,
    DumpSeries,
    Env,
    MariaDB,
    Row,
    Verdict,
    cpr_leaks,
    drop_atomically,
    fill,
    mount_tmpfs,
    python,
    say,
    state_tmp_entries,
    state_tmp_problems,
    umount,
    verify,
    wait_for,
)
from fault_kit import Daemon as DaemonProcess

SCENARIOS = ("kill", "migration", "outage", "disk_full", "two_daemons")
STAGES = ("parse", "preflight", "production", "archive", "random")
TRIGGER = {"parse": "dataset claimed", "preflight": "dataset parsed", "production": "preflight committed",
           "archive": "production committed"}
FIRST_DAY = date(2025, 3, 1)


class Suite:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.seed: int = args.seed
        self.rng = random.Random(self.seed)
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.cprs: set[str] = set()
        self.mariadb: MariaDB | None = None
        self.daemons: list[DaemonProcess] = []
        self.mounts: list[Path] = []
        self.envs = 0
        self.rows = args.rows
        self.figures: dict[str, Any] = {
            "trials": 0, "inconsistent": 0, "lost": 0, "doubled": 0, "locked_on_infrastructure": 0, "stalled": 0,
            "cpr_leaks": 0, "status_unanswered": 0, "status_green_while_down": 0, "leftovers": 0,
            "stop_hung": 0, "other_failures": 0,
        }
        self.scenarios: dict[str, Any] = {}
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.durations: dict[str, float] = {}

    # --- bookkeeping ---------------------------------------------------------------------------------------

    def fail(self, where: str, message: str, figure: str = "other_failures", count: int = 1) -> None:
        self.figures[figure] += count
        text = f"[{where}] {message}"
        self.failures.append(text[:600])
        say(f"FAILURE {text[:600]}")

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            say(f"note: {message}")

    def judge(self, where: str, verdict: Verdict, seen: dict[str, set[str]]) -> bool:
        """Count what a verification found (each dataset once per figure); True if the state is sound."""
        sound = True
        if verdict.inconsistent:
            self.fail(where, "; ".join(verdict.inconsistent[:4]), "inconsistent")
            sound = False
        for figure, items in (("lost", verdict.lost), ("doubled", verdict.doubled)):
            for item in items:
                if item not in seen.setdefault(figure, set()):
                    seen[figure].add(item)
                    self.fail(where, item, figure)
                sound = False
        if verdict.locked:
            self.fail(where, "; ".join(verdict.locked[:3]), "locked_on_infrastructure")
            sound = False
        for item in verdict.leftovers:
            if item not in seen.setdefault("leftovers", set()):  # a file left behind is counted once
                seen["leftovers"].add(item)
                self.fail(where, item, "leftovers")
        return sound

    def new_env(self, backend: str, label: str) -> Env:
        self.envs += 1
        name = f"f{self.envs:03d}_{label}"
        root = self.workdir / "envs" / name
        return Env(backend, root, name, self.mariadb if backend == "mariadb" else None, self.logs)

    def start(self, env: Env, label: str, wait: bool = True, **extra: str) -> DaemonProcess:
        daemon = DaemonProcess(env, label, **extra).start()
        self.daemons.append(daemon)
        if wait and not daemon.wait_ready(120):
            raise RuntimeError(f"daemon {label} did not become ready: {daemon.log_tail()}")
        return daemon

    def finish_env(self, env: Env, *daemons: DaemonProcess) -> None:
        for daemon in daemons:
            self.stop(daemon, env.name)
        env.drop()

    def stop(self, daemon: DaemonProcess, where: str) -> None:
        """SIGTERM; an idle daemon (or one finishing an import) must exit within the stop timeout."""
        if daemon.alive() and daemon.stop(45) is None:
            self.fail(where, f"daemon did not exit within 45 s of SIGTERM (stop timeout 30 s); killed: "
                             f"{daemon.log_path.name}", "stop_hung")

    def backends(self) -> list[str]:
        return ["sqlite", "mariadb"] if self.args.backend == "both" else [self.args.backend]

    # --- kill -9 at every stage -----------------------------------------------------------------------------

    def kill_scenario(self, backend: str) -> None:
        trials = self.args.kill_trials if self.args.kill_trials is not None else (5 if self.quick else 50)
        result: dict[str, Any] = {"trials": 0, "second_kills": 0, "aimed": {}, "landed": {}, "resets": 0}
        self.scenarios.setdefault("kill", {})[backend] = result
        estimate = {"parse": 0.05, "preflight": 0.1, "production": 0.1, "archive": 0.005}
        claim_latency = 1.0  # from the drop to "dataset claimed": rescan, readiness, lock
        env: Env | None = None
        daemon: DaemonProcess | None = None
        series: DumpSeries | None = None
        names: list[str] = []
        seen: dict[str, set[str]] = {}
        try:
            for trial in range(trials):
                where = f"kill/{backend}/{trial}"
                if env is None or series is None or daemon is None:
                    env = self.new_env(backend, "kill")
                    series = DumpSeries(self.rng, self.rows, FIRST_DAY, self.cprs)
                    names, seen = [], {}
                    daemon = self.start(env, "kill")
                stage = STAGES[trial % len(STAGES)] if trial < len(STAGES) else self.rng.choice(STAGES)
                result["aimed"][stage] = result["aimed"].get(stage, 0) + 1
                name, rows = series.next_dump()
                names.append(name)
                drop_atomically(env.register_dir, name, DumpSeries.encode(rows))
                dropped = time.time()
                if stage == "random":  # anywhere from the drop to shortly after the archive
                    time.sleep(self.rng.uniform(0, claim_latency + sum(estimate.values()) + 0.1))
                else:
                    if not daemon.wait_event(TRIGGER[stage], name, 90):
                        self.fail(where, f"the daemon never logged {TRIGGER[stage]!r} for {name}: "
                                         f"{daemon.log_tail(5)}", "stalled")
                    time.sleep(self.rng.uniform(0, 0.7 * estimate[stage]))
                daemon.kill9()
                left = state_tmp_entries(env)
                landed = _landed(daemon, name)
                claimed_at = daemon.event_time("dataset claimed", name)
                if claimed_at is not None:
                    claim_latency = 0.5 * claim_latency + 0.5 * max(0.0, claimed_at - dropped)
                result["landed"][landed] = result["landed"].get(landed, 0) + 1
                result["trials"] += 1
                self.figures["trials"] += 1
                say(f"{where}: aimed at {stage}, landed in {landed}")

                daemon = self.start(env, "kill", wait=False)
                if self.rng.random() < 0.25:  # and once more while it resumes
                    wait_for(daemon.answers_http, 60, 0.02)
                    time.sleep(self.rng.uniform(0, 0.5 + sum(estimate.values())))
                    daemon.kill9()
                    left |= state_tmp_entries(env)
                    result["second_kills"] += 1
                    daemon = self.start(env, "kill", wait=False)
                if not daemon.wait_ready(120):
                    self.fail(where, f"restarted daemon never ready: {daemon.log_tail(5)}", "stalled")
                    daemon.kill9()
                    env, daemon = None, None
                    result["resets"] += 1
                    continue
                if not wait_for(functools.partial(env.done, list(names)), 120, 0.1):
                    done = env.safe_successes() or []
                    self.fail(where, f"{name} not imported and archived within 120 s after the restart "
                                     f"({len(done)} successes, last {done[-2:]}, processing {env.processing()}, "
                                     f"locked {env.locked()} {env.lock_reason()!r}): {daemon.log_path.name}",
                              "stalled")
                    self.finish_env(env, daemon)
                    env, daemon = None, None
                    result["resets"] += 1
                    continue
                for key, seconds in daemon.stage_seconds(name).items():
                    estimate[key] = 0.5 * estimate[key] + 0.5 * seconds
                for problem in state_tmp_problems(env, left):
                    self.fail(where, problem, "leftovers")
                verdict = verify(env, names, rows)
                _clear_leftovers(env)
                if not self.judge(where, verdict, seen):
                    self.finish_env(env, daemon)  # start afresh rather than count one fault again and again
                    env, daemon = None, None
                    result["resets"] += 1
        finally:
            if env is not None:
                self.finish_env(env, *([daemon] if daemon else []))
        result["stage_seconds_estimate"] = {**{k: round(v, 3) for k, v in estimate.items()},
                                            "claim_latency": round(claim_latency, 3)}

    # --- kill -9 during the migration of fresh databases --------------------------------------------------

    def migration_scenario(self, backend: str) -> None:
        trials = 1 if self.quick else 5
        result: dict[str, Any] = {"trials": 0, "kills": 0, "killed_before_running": 0}
        self.scenarios.setdefault("migration", {})[backend] = result
        window = 0.5 if backend == "sqlite" else 1.5
        for trial in range(trials):
            where = f"migration/{backend}/{trial}"
            env = self.new_env(backend, "migr")
            daemon: DaemonProcess | None = None
            try:
                for _ in range(self.rng.randint(1, 3)):
                    daemon = self.start(env, "migr", wait=False)
                    wait_for(functools.partial(_up_or_dead, daemon), 60, 0.01)
                    time.sleep(self.rng.uniform(0, window))
                    running = daemon.saw("importer running")
                    daemon.kill9()
                    result["kills"] += 1
                    result["killed_before_running"] += 0 if running else 1
                began = time.monotonic()
                daemon = self.start(env, "migr", wait=False)
                wait_for(functools.partial(_up_or_dead, daemon), 60, 0.01)
                http_up = time.monotonic()
                if not daemon.wait_ready(120):
                    self.fail(where, f"the daemon did not come up after kills during migration: "
                                     f"{daemon.log_tail(6)}", "stalled")
                    continue
                window = max(0.3, min(3.0, 1.2 * (time.monotonic() - http_up))) if trial == 0 else window
                result.setdefault("start_s", []).append(round(time.monotonic() - began, 2))
                series = DumpSeries(self.rng, max(500, self.rows // 4), FIRST_DAY, self.cprs)
                name, rows = series.next_dump()
                drop_atomically(env.register_dir, name, DumpSeries.encode(rows))
                if not wait_for(functools.partial(env.done, [name]), 120, 0.1):
                    self.fail(where, f"{name} not imported after the migration kills: {daemon.log_tail(6)}", "stalled")
                    continue
                result["trials"] += 1
                self.figures["trials"] += 1
                self.judge(where, verify(env, [name], rows), {})
                _clear_leftovers(env)
            finally:
                self.finish_env(env, *([daemon] if daemon else []))

    # --- database outages (the private MariaDB) -------------------------------------------------------------

    def outage_scenario(self) -> None:
        assert self.mariadb is not None
        if self.quick:
            cases = [("kill", "preflight", 4.0), ("term", "production", 4.0), ("stop", "start", 4.0)]
        else:
            cases = [(kind, stage, 12.0) for kind in ("kill", "term", "stop")
                     for stage in ("preflight", "production", "start")]
            cases.append(("kill", "production", 90.0))
        self.scenarios["outage"] = {"backend": "mariadb", "cases": []}
        for kind, stage, down_s in cases:
            try:
                self.outage_case(kind, stage, down_s)
            except Exception as error:
                self.fail(f"outage/{kind}/{stage}", f"crashed: {type(error).__name__}: {error}")
                traceback.print_exc(file=sys.stderr)
            finally:
                if self.mariadb.stopped:
                    self.mariadb.send(signal.SIGCONT)
                if not self.mariadb.running():
                    self.mariadb.start()

    def outage_case(self, kind: str, stage: str, down_s: float) -> None:
        assert self.mariadb is not None
        server = self.mariadb
        where = f"outage/{kind}/{stage}/{down_s:g}s"
        case: dict[str, Any] = {"kind": kind, "stage": stage, "down_s": down_s}
        self.scenarios["outage"]["cases"].append(case)
        env = self.new_env("mariadb", "out")
        rows = max(self.rows * 4, 12000)  # an import long enough to cut into
        series = DumpSeries(self.rng, rows, FIRST_DAY, self.cprs)
        daemon = self.start(env, "outage")
        first, first_rows = series.next_dump()
        drop_atomically(env.register_dir, first, DumpSeries.encode(first_rows))
        if not wait_for(lambda: env.done([first]), 120, 0.1):
            self.fail(where, f"baseline import did not finish: {daemon.log_tail(5)}", "stalled")
            self.finish_env(env, daemon)
            return
        name, last = series.next_dump()
        names = [first, name]

        def cut() -> None:
            if kind == "kill":
                server.kill()
            elif kind == "term":
                server.terminate(wait=False)
            else:
                server.send(signal.SIGSTOP)

        if stage == "start":
            self.stop(daemon, where)
            cut()
            if kind == "term":
                server.terminate()
            daemon = self.start(env, "outage", wait=False)
            wait_for(lambda: daemon.answers_http() or not daemon.alive(), 60, 0.05)
            drop_atomically(env.register_dir, name, DumpSeries.encode(last))
            case["hit"] = True
        else:
            drop_atomically(env.register_dir, name, DumpSeries.encode(last))
            daemon.wait_event(TRIGGER[stage], name, 90)
            if stage == "preflight":
                time.sleep(self.rng.uniform(0, 0.03))
            cut()
            case["hit"] = not daemon.saw("production committed", name)
            if kind == "term":
                server.terminate()  # now wait for the orderly shutdown to end
        began = time.monotonic()
        samples = unanswered = green = 0
        slowest = 0.0
        while time.monotonic() - began < down_s:
            tick = time.monotonic()
            code, took, _ = daemon.status(timeout=10)
            samples += 1
            slowest = max(slowest, took)
            if code is None or took > 10:
                unanswered += 1
            elif code == 200:
                green += 1
            if env.locked():
                break
            if not daemon.alive():
                self.fail(where, f"the daemon exited during the outage: {daemon.log_tail(5)}")
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        case.update(status_samples=samples, status_unanswered=unanswered, status_green=green,
                    status_slowest_s=round(slowest, 2))
        if unanswered:
            self.fail(where, f"/status did not answer within 10 s in {unanswered} of {samples} requests while the "
                             f"database was down (slowest {slowest:.1f} s)", "status_unanswered", unanswered)
        if green:
            self.fail(where, f"/status said 200 OK in {green} of {samples} requests while the database was down",
                      "status_green_while_down", green)
        if env.locked():
            self.fail(where, f"register LOCKED by a database outage: {env.lock_reason()}", "locked_on_infrastructure")
        if kind == "stop":
            server.send(signal.SIGCONT)
        else:
            server.start()
        restored = time.monotonic()
        if not wait_for(lambda: env.done(names), 180, 0.2):
            self.fail(where, f"{name} not imported within 180 s after the database came back "
                             f"(successes {env.safe_successes()}, processing {env.processing()}, waiting "
                             f"{env.waiting()}, daemon alive {daemon.alive()}): {daemon.log_tail(6)}", "stalled")
            self.finish_env(env, daemon)
            return
        case["recovered_s"] = round(time.monotonic() - restored, 1)
        if not wait_for(lambda: daemon.status(10)[0] == 200, 60, 0.5):
            self.fail(where, f"/status still not 200 a minute after recovery: {daemon.status(10)}", "stalled")
        retries = daemon.count_events("infrastructure error, will retry", "cannot start")
        case["retries_logged"] = retries
        if retries == 0 and case.get("hit") and (kind != "stop" or down_s > 15):  # a hung connect takes 10 s
            self.fail(where, "no retry was logged although the database went away mid-import")
        if down_s >= 60 and retries < 5:
            self.fail(where, f"only {retries} retries logged during a {down_s:g} s outage (backoff capped at 2 s)")
        self.judge(where, verify(env, names, last), {})
        _clear_leftovers(env)
        say(f"{where}: {json.dumps(case)}")
        self.finish_env(env, daemon)

    # --- disk full ------------------------------------------------------------------------------------------

    def disk_full_scenario(self, backend: str, places: list[str]) -> None:
        result = self.scenarios.setdefault("disk_full", {}).setdefault(backend, {})
        for place in places:
            try:
                result[place] = self.disk_full_case(backend, place)
            except Exception as error:
                self.fail(f"disk_full/{backend}/{place}", f"crashed: {type(error).__name__}: {error}")
                traceback.print_exc(file=sys.stderr)

    def disk_full_case(self, backend: str, place: str) -> dict[str, Any]:
        where = f"disk_full/{backend}/{place}"
        env = self.new_env(backend, f"full{place}")
        target = {"state": env.state_dir, "archive": env.inbox, "tmp": env.tmpdir}[place]
        size_kib = {"state": 4096, "archive": 16384, "tmp": 2048}[place]
        if not mount_tmpfs(target, size_kib):
            self.scenarios["disk_full_method"] = "unavailable"
            self.fail(where, "cannot mount a tmpfs here; disk-full not tested")
            return {"tested": False}
        self.scenarios["disk_full_method"] = "tmpfs"
        self.mounts.append(target)
        daemon: DaemonProcess | None = None
        case: dict[str, Any] = {"tmpfs_kib": size_kib}
        try:
            series = DumpSeries(self.rng, self.rows, FIRST_DAY, self.cprs)
            daemon = self.start(env, f"full{place}")
            first, first_rows = series.next_dump()
            drop_atomically(env.register_dir, first, DumpSeries.encode(first_rows))
            if not wait_for(lambda: env.done([first]), 120, 0.1):
                self.fail(where, f"baseline import did not finish: {daemon.log_tail(5)}", "stalled")
                return case
            name, last = series.next_dump()
            payload = DumpSeries.encode(last)
            if place == "archive":  # the dataset fits, the archive's checksum file will not
                hidden = env.register_dir / f".{name}.part"
                hidden.write_bytes(payload)
                filler = fill(target)
                hidden.rename(env.register_dir / name)
            else:
                filler = fill(target)
                drop_atomically(env.register_dir, name, payload)
            hold = 4.0 if self.quick else 10.0
            began = time.monotonic()
            while time.monotonic() - began < hold:
                if env.locked() or not daemon.alive():
                    break
                time.sleep(0.2)
            case["retries_while_full"] = daemon.count_events("infrastructure error, will retry")
            case["imported_while_full"] = name in (env.safe_successes() or [])
            if env.locked():
                self.fail(where, f"register LOCKED by a full disk: {env.lock_reason()}", "locked_on_infrastructure")
            if not daemon.alive():
                self.fail(where, f"the daemon exited on a full disk: {daemon.log_tail(5)}")
                daemon = self.start(env, f"full{place}", wait=False)
            filler.unlink()
            if not wait_for(lambda: env.done([first, name]), 120, 0.1):
                self.fail(where, f"{name} not imported within 120 s after space was freed (successes "
                                 f"{env.safe_successes()}, processing {env.processing()}, locked {env.locked()}): "
                                 f"{daemon.log_tail(5)}", "stalled")
                return case
            self.judge(where, verify(env, [first, name], last), {})
            _clear_leftovers(env)
            say(f"{where}: {json.dumps(case)}")
            return case
        finally:
            if daemon is not None:
                self.stop(daemon, where)
            env.drop()
            umount(target)
            self.mounts.remove(target)

    # --- two daemons and a replay ---------------------------------------------------------------------------

    def two_daemons_scenario(self, backend: str) -> None:
        where = f"two_daemons/{backend}"
        count = 5 if self.quick else 10
        result: dict[str, Any] = {"datasets": count}
        self.scenarios.setdefault("two_daemons", {})[backend] = result
        env = self.new_env(backend, "two")
        daemons = [self.start(env, "twoA", wait=False, STAMDATA_WATCH_MODE="native"),
                   self.start(env, "twoB", wait=False, STAMDATA_WATCH_MODE="polling")]
        try:
            for daemon in daemons:
                if not daemon.wait_ready(120):
                    raise RuntimeError(f"daemon not ready: {daemon.log_tail(5)}")
            series = DumpSeries(self.rng, self.rows, FIRST_DAY, self.cprs)
            replay_dir = env.root / "replay"
            replay_dir.mkdir()
            dumps: list[tuple[str, dict[str, Row]]] = [series.next_dump() for _ in range(count)]
            for name, rows in dumps:
                (replay_dir / name).write_bytes(DumpSeries.encode(rows))
            replay: subprocess.Popen[bytes] | None = None
            for index, (name, rows) in enumerate(dumps):
                drop_atomically(env.register_dir, name, DumpSeries.encode(rows))
                if index == 0:  # the race: replay starts as soon as a daemon has taken the first dataset
                    wait_for(lambda: any(d.saw("dataset claimed") for d in daemons), 30, 0.01)
                    replay = self._replay(env, replay_dir, "replay1")
                time.sleep(self.rng.uniform(0, 0.3))  # a dropping script's pace
            assert replay is not None
            names = [name for name, _ in dumps]
            done = wait_for(lambda: env.done(names), 240, 0.2)
            try:
                code = replay.wait(240)
            except subprocess.TimeoutExpired:
                replay.kill()
                code = None
            result["replay_exit"] = code
            output = (self.logs / f"{env.name}-replay1.log").read_text(errors="replace")
            if code == 1 and ("same-date" in output or "older-date" in output):
                result["replay_refused_as_already_imported"] = True
                self.note("replay racing the daemons stops with exit 1 (same-date/older-date refusal) when a daemon "
                          "imported a dataset after replay listed what was done; nothing imported twice")
            elif code != 0:
                self.fail(where, f"replay exited {code}: {output[-400:]}")
            if not done:
                self.fail(where, f"not every dataset imported within 240 s (successes {env.safe_successes()}, "
                                 f"waiting {env.waiting()}, processing {env.processing()})", "stalled")
            self.judge(where, verify(env, names, dumps[-1][1]), {})
            again = self._replay(env, replay_dir, "replay2")
            code = again.wait(240)
            output = (self.logs / f"{env.name}-replay2.log").read_text(errors="replace")
            result["second_replay_exit"] = code
            if code != 0 or output.count("already imported, skipped") != count:
                self.fail(where, f"a second replay after the race should skip all {count}: exit {code}: "
                                 f"{output[-300:]}", "doubled" if "imported (run" in output else "other_failures")
            self.judge(where, verify(env, names, dumps[-1][1]), {})
            result["imported_by"] = {daemon.log_path.name: daemon.count_events("production committed")
                                     for daemon in daemons}
            result["imported_by_replay"] = (self.logs / f"{env.name}-replay1.log").read_text(
                errors="replace").count("imported (run")
            _clear_leftovers(env)
        finally:
            self.finish_env(env, *daemons)

    def _replay(self, env: Env, directory: Path, label: str) -> subprocess.Popen[bytes]:
        environ = env.environ(0)
        environ.pop("STAMDATA_LISTEN", None)
        with (self.logs / f"{env.name}-{label}.log").open("wb") as log:
            return subprocess.Popen([python(), "-m", "importer", "replay", "autorisation", str(directory)],
                                    env=environ, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    # --- the run --------------------------------------------------------------------------------------------

    def run(self) -> None:
        wanted = set(self.args.scenario or SCENARIOS)
        backends = self.backends()
        if "mariadb" in backends:
            began = time.monotonic()
            self.mariadb = MariaDB(self.workdir / "mariadb")
            say(f"installing a private MariaDB in {self.mariadb.base} (port {self.mariadb.port})")
            self.mariadb.install()
            self.mariadb.start()
            self.durations["mariadb_setup"] = round(time.monotonic() - began, 1)
        plan: list[tuple[str, str, Any]] = []
        for backend in backends:
            if "migration" in wanted:
                plan.append(("migration", backend, lambda b=backend: self.migration_scenario(b)))
            if "kill" in wanted:
                plan.append(("kill", backend, lambda b=backend: self.kill_scenario(b)))
            if "two_daemons" in wanted:
                plan.append(("two_daemons", backend, lambda b=backend: self.two_daemons_scenario(b)))
            if "disk_full" in wanted:
                if self.quick:
                    if backend == backends[0]:
                        plan.append(("disk_full", backend, lambda b=backend: self.disk_full_scenario(b, ["archive"])))
                else:
                    plan.append(("disk_full", backend,
                                 lambda b=backend: self.disk_full_scenario(b, ["state", "archive", "tmp"])))
        if "outage" in wanted:
            if "mariadb" in backends:
                plan.append(("outage", "mariadb", self.outage_scenario))
            else:
                self.note("database outages need the MariaDB backend; not run on SQLite alone")
        for scenario, backend, step in plan:
            say(f"--- {scenario} on {backend}")
            began = time.monotonic()
            try:
                step()
            except Exception as error:
                self.fail(f"{scenario}/{backend}", f"scenario crashed: {type(error).__name__}: {error}")
                traceback.print_exc(file=sys.stderr)
            self.durations[f"{scenario}/{backend}"] = round(time.monotonic() - began, 1)

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.alive():
                daemon.stop(20)
        for target in list(self.mounts):
            umount(target)
        if self.mariadb is not None:
            self.mariadb.close()

    def report(self, total_s: float) -> dict[str, Any]:
        leaks, examples = cpr_leaks(sorted(self.logs.iterdir()), self.cprs)
        if leaks:
            self.fail("cpr", f"{leaks} log lines hold a full CPR number, e.g. {examples[0]}", "cpr_leaks", leaks)
        return {
            **self.figures,
            "failures_count": len(self.failures),
            "seed": self.seed,
            "quick": self.quick,
            "backends": self.backends(),
            "rows": self.rows,
            "disk_full_method": self.scenarios.pop("disk_full_method", None),
            "scenarios": self.scenarios,
            "durations_s": {**self.durations, "total": round(total_s, 1)},
            "daemons_started": len(self.daemons),
            "notes": self.notes,
            "failures": self.failures,
        }


def _landed(daemon: DaemonProcess, name: str) -> str:
    """Where the kill fell, by the last event the killed daemon logged for the dataset."""
    for event, stage in (("dataset archived", "after-archive"), ("production committed", "archive"),
                         ("preflight committed", "production"), ("dataset parsed", "preflight"),
                         ("dataset claimed", "parse")):
        if daemon.saw(event, name):
            return stage
    return "before-claim"


def _up_or_dead(daemon: DaemonProcess) -> bool:
    return daemon.answers_http() or not daemon.alive()


def _clear_leftovers(env: Env) -> None:
    """Once counted, a leftover temporary file is removed so the next trial does not count it again."""
    for leftover in env.tmpdir.glob("stamdata-load-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the CI subset (a few minutes)")
    parser.add_argument("--backend", choices=("sqlite", "mariadb", "both"), default="both")
    parser.add_argument("--kill-trials", type=int, default=None, help="kill -9 trials per backend (default 50, "
                                                                      "3 with --quick)")
    parser.add_argument("--seed", type=int, default=None, help="drives every random choice (default: random)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--rows", type=int, default=None, help="rows of a dump (default 4000, 2500 with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, inboxes)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    if args.rows is None:
        args.rows = 2500 if args.quick else 4000
    workdir = Path(tempfile.mkdtemp(prefix="stamdata-faults-"))
    say(f"seed {args.seed}, working directory {workdir}")
    suite = Suite(args, workdir)
    began = time.monotonic()

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    try:
        suite.run()
    except Exception as error:
        suite.fail("suite", f"crashed: {type(error).__name__}: {error}")
        traceback.print_exc(file=sys.stderr)
    finally:
        suite.close()
    figures = suite.report(time.monotonic() - began)
    print(json.dumps(figures, ensure_ascii=False, default=str), flush=True)
    if args.keep or figures["failures"]:
        say(f"logs kept in {workdir}" if args.keep else f"failures: logs in {workdir / 'logs'}")
    if not args.keep:
        shutil.rmtree(workdir / "envs", ignore_errors=True)
        shutil.rmtree(workdir / "mariadb", ignore_errors=True)
        if not figures["failures"]:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
