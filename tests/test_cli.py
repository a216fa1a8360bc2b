"""The real command line in a subprocess: exit codes, summaries, JSON logs, configuration, privacy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from importer.load import inbox
from tests.conftest import Databases, run_cli
from tests.registers.autorisation.kit import FIRST, SECOND, write_dump


def test_import_prints_a_summary_and_logs_json_with_run_id_and_register(databases: Databases, tmp_path: Path) -> None:
    first = write_dump(tmp_path, "20261120AutDK.csv", FIRST)
    result = run_cli("import", "autorisation", str(first), env=databases.environ())
    assert result.exit_code == 0, result.stderr
    assert "inserted 3, updated 0, closed 0, unchanged 0" in result.stdout

    result = run_cli(
        "import", "autorisation", str(write_dump(tmp_path, "20261121AutDK.csv", SECOND)), env=databases.environ()
    )
    assert result.exit_code == 0, result.stderr
    assert "rows read 3, inserted 1, updated 1, closed 1, unchanged 1" in result.stdout

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines, "no log lines"
    run_ids = {line.get("run_id") for line in lines if line["event"] != "preflight out of step with production"}
    assert len(run_ids) == 1 and None not in run_ids
    assert all(line.get("register") == "autorisation" for line in lines)
    assert any(line["event"] == "dataset imported" for line in lines)


def test_refusal_exits_1_with_file_line_and_rule_and_masks_cpr(databases: Databases, tmp_path: Path) -> None:
    bad = write_dump(tmp_path, "20261120AutDK.csv", [FIRST[0], "0C3D4;0202851234;;Øjvind;5166"])
    result = run_cli("import", "autorisation", str(bad), env=databases.environ())
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("DataError: 20261120AutDK.csv:2: surname-required:")
    assert "0202851234" not in result.stderr and "0101801234" not in result.stderr + result.stdout


def test_usage_errors_exit_2(sqlite_databases: Databases) -> None:
    env = sqlite_databases.environ()
    assert run_cli("import", "no-such-register", "x.csv", env=env).exit_code == 2
    assert run_cli("import", "autorisation", env=env).exit_code == 2
    assert run_cli("frobnicate", env=env).exit_code == 2
    assert run_cli("status", env={**env, "STAMDATA_CONFIG": "/nonexistent/importer.toml"}).exit_code == 2


def test_unreachable_database_exits_3(tmp_path: Path) -> None:
    env = {
        "STAMDATA_PRODUCTION_URL": "mysql+pymysql://root@127.0.0.1:1/stamdata",
        "STAMDATA_PREFLIGHT_URL": "mysql+pymysql://root@127.0.0.1:1/stamdata_preflight",
    }
    result = run_cli("import", "autorisation", str(write_dump(tmp_path, "20261120AutDK.csv", FIRST)), env=env)
    assert result.exit_code == 3
    assert "InfrastructureError" in result.stderr


def test_validate_changes_nothing_and_prints_the_same_summary(databases: Databases, tmp_path: Path) -> None:
    env = databases.environ()
    assert (
        run_cli("import", "autorisation", str(write_dump(tmp_path, "20261120AutDK.csv", FIRST)), env=env).exit_code == 0
    )
    before = databases.rows("production", "Autorisation2"), databases.rows("preflight", "Autorisation2")
    result = run_cli("validate", "autorisation", str(write_dump(tmp_path, "20261121AutDK.csv", SECOND)), env=env)
    assert result.exit_code == 0, result.stderr
    assert "validated, rolled back" in result.stdout
    assert "inserted 1, updated 1, closed 1, unchanged 1" in result.stdout
    assert (databases.rows("production", "Autorisation2"), databases.rows("preflight", "Autorisation2")) == before


def test_replay_imports_in_name_order_skips_what_is_done_and_stops_at_a_refusal(
    databases: Databases, tmp_path: Path
) -> None:
    drops = tmp_path / "drops"
    write_dump(drops, "20261121AutDK.csv", SECOND)
    write_dump(drops, "20261120AutDK.csv", FIRST)
    write_dump(drops, "20261122AutDK.csv", [FIRST[0], "bad line"])
    write_dump(drops, "20261123AutDK.csv", FIRST)
    env = databases.environ()

    result = run_cli("replay", "autorisation", str(drops), env=env)
    assert result.exit_code == 1
    assert result.stdout.index("20261120AutDK.csv: imported") < result.stdout.index("20261121AutDK.csv: imported")
    assert "20261123" not in result.stdout
    assert "20261122AutDK.csv:2: column-count" in result.stderr

    (drops / "20261122AutDK.csv").unlink()
    result = run_cli("replay", "autorisation", str(drops), env=env)
    assert result.exit_code == 0, result.stderr
    assert "20261120AutDK.csv: already imported, skipped" in result.stdout
    assert "20261123AutDK.csv: imported" in result.stdout
    outcomes = [(row["Dataset"], row["Outcome"])
                for row in databases.rows("production", "autorisationimporterImportStatus", "Id")]
    assert outcomes == [("20261120AutDK.csv", "SUCCESS"), ("20261121AutDK.csv", "SUCCESS"),
                        ("20261122AutDK.csv", "FAILURE"), ("20261123AutDK.csv", "SUCCESS")]


def test_status_unlock_and_migrate(sqlite_databases: Databases, tmp_path: Path) -> None:
    env = sqlite_databases.environ()
    production = Path(sqlite_databases.production_url.removeprefix("sqlite:///"))
    result = run_cli("status", env=env)  # a check: it never creates the database it is pointed at
    assert result.exit_code == 2 and "production database unreachable" in result.stdout
    assert not production.exists()

    result = run_cli("migrate", env=env)
    assert result.exit_code == 0 and "production: at V" in result.stdout
    assert production.stat().st_mode & 0o077 == 0, "CPR data is private whatever the umask"
    result = run_cli("status", env=env)
    assert result.exit_code == 0 and result.stdout.startswith("OK\n") and "never run" in result.stdout

    lock = sqlite_databases.inbox / "autorisation" / "LOCKED"
    lock.parent.mkdir(parents=True)
    lock.write_text("20261122AutDK.csv:2: cpr: column 2 (cpr) must be 10 digits\n")
    result = run_cli("status", env=env)
    assert result.exit_code == 2
    assert "register autorisation is locked: 20261122AutDK.csv:2: cpr" in result.stdout.splitlines()[0]
    result = run_cli("unlock", "autorisation", env=env)
    assert result.exit_code == 0 and "unlocked" in result.stdout
    assert not lock.exists()
    assert "not locked" in run_cli("unlock", "autorisation", env=env).stdout


def test_configuration_file_with_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "importer.toml"
    config.write_text(
        f'production_url = "sqlite:///{tmp_path}/prod.sqlite"\n'
        f'preflight_url = "sqlite:///{tmp_path}/pre.sqlite"\n'
        "[registers.autorisation]\nreduction_guard = 0\n"
    )
    first = write_dump(tmp_path, "20261120AutDK.csv", FIRST)
    second = write_dump(tmp_path, "20261121AutDK.csv", SECOND)
    assert run_cli("--config", str(config), "import", "autorisation", str(first), env={}).exit_code == 0
    refused = run_cli("import", "autorisation", str(second), env={"STAMDATA_CONFIG": str(config)})
    assert refused.exit_code == 1 and "reduction-guard" in refused.stderr
    allowed = run_cli(
        "import",
        "autorisation",
        str(second),
        env={"STAMDATA_CONFIG": str(config), "STAMDATA_AUTORISATION_REDUCTION_GUARD": "5"},
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert (tmp_path / "prod.sqlite").exists() and (tmp_path / "pre.sqlite").exists()


def test_console_script_and_default_sqlite_location(tmp_path: Path) -> None:
    """With no configuration at all, the embedded SQLite databases live in ./var and the inbox in ./inbox."""
    script = shutil.which("stamdata-importer", path=str(Path(sys.executable).parent))
    assert script is not None
    first = write_dump(tmp_path / "drop", "20261120AutDK.csv", FIRST)
    completed = subprocess.run(
        [script, "import", "autorisation", str(first)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "var" / "production.sqlite").exists()
    assert (tmp_path / "var" / "preflight.sqlite").exists()


def test_replay_reads_the_daemons_archive_as_the_daemon_writes_it(databases: Databases, tmp_path: Path) -> None:
    root = tmp_path / "old-inbox"
    for year, name, lines in ((2025, "20251231AutDK.csv", FIRST), (2026, "20260101AutDK.csv", SECOND),
                              (2026, "20260101AutDK.csv", SECOND)):  # the last: delivered twice, archived as .1
        dataset = write_dump(root / "autorisation" / ".processing", name, lines)
        inbox.archive(root, "autorisation", dataset, year, inbox.entry_files(dataset))
    archive = root / "autorisation" / "processed"
    assert (archive / "2026" / "20260101AutDK.csv.1").exists()

    result = run_cli("replay", "autorisation", str(archive), env=databases.environ())
    assert result.exit_code == 0, result.stderr
    assert "20251231AutDK.csv: imported" in result.stdout and "20260101AutDK.csv: imported" in result.stdout
    assert "20260101AutDK.csv.1: already imported, skipped" in result.stdout
    outcomes = [(row["Dataset"], row["Outcome"])
                for row in databases.rows("production", "autorisationimporterImportStatus", "Id")]
    assert outcomes == [("20251231AutDK.csv", "SUCCESS"), ("20260101AutDK.csv", "SUCCESS")]


def test_a_fifo_given_as_a_dataset_is_refused_not_read_for_ever(sqlite_databases: Databases, tmp_path: Path) -> None:
    fifo = tmp_path / "20261120AutDK.csv"
    os.mkfifo(fifo)
    result = run_cli("import", "autorisation", str(fifo), env=sqlite_databases.environ(), timeout=60)
    assert result.exit_code == 1
    assert "20261120AutDK.csv: not-a-regular-file:" in result.stderr
