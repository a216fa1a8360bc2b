"""`stamdata-importer`: the operator's command line.

Exit codes: 0 done; 1 dataset refused (data error, message on stderr names file, line and rule);
2 usage error; 3 infrastructure error (database unreachable, disk full and the like).
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from importer import __version__
from importer.clock import SystemClock
from importer.config import Settings, check_registers, load_settings
from importer.errors import ImporterError, UsageError
from importer.http.health import HealthChecker
from importer.load import inbox
from importer.load.pipeline import Pipeline, RunSummary
from importer.load.plugin import Register, discover, lookup
from importer.logs import configure_logging, get_logger
from importer.privacy import mask_cpr
from importer.signals import restore_default_handling

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # rich tracebacks print local variables, which may hold personal data
    help="Loads the national health platform's reference registers (stamdata) with preflight and full history.",
)
out = Console(highlight=False, soft_wrap=True)
log = get_logger(__name__)


class _State:
    settings: Settings


state = _State()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"stamdata-importer {__version__}")
        raise typer.Exit(0)


@app.callback()
def _configure(
    context: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML configuration file (default: $STAMDATA_CONFIG, else built-in defaults)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    if context.invoked_subcommand not in SERVICES:
        restore_default_handling()
    with _exit_codes():
        state.settings = load_settings(config)
        configure_logging(state.settings.log_level)
        for warning in check_registers(state.settings, discover()):
            log.warning("configuration", warning=warning)


# The long-running commands: they own SIGTERM and SIGINT and stop cleanly (exit 0), even while starting.
SERVICES = frozenset({"run", "serve"})

RegisterArg = Annotated[str, typer.Argument(help="Register name, e.g. autorisation.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Override guards such as the reduction guard (audited).")]


@app.command("import")
def import_command(
    register: RegisterArg,
    path: Annotated[Path, typer.Argument(help="Dataset: a file, a directory or a ZIP.")],
    force: ForceOpt = False,
) -> None:
    """Import one dataset through preflight and production."""
    with _exit_codes(), _pipeline() as pipeline:
        _print_summary(_import_with_progress(pipeline, _register(register), path, force=force))


@app.command()
def validate(register: RegisterArg, path: Annotated[Path, typer.Argument()], force: ForceOpt = False) -> None:
    """Run everything against preflight, then roll back: what an import would do, changing nothing."""
    with _exit_codes(), _pipeline() as pipeline:
        _print_summary(_import_with_progress(pipeline, _register(register), path, force=force, validate_only=True))


@app.command()
def replay(
    register: RegisterArg,
    directory: Annotated[Path, typer.Argument(
        help="Directory whose entries are datasets, imported in name order; or the daemon's archive (processed/).")],
    force: ForceOpt = False,
) -> None:
    """Import every dataset in DIRECTORY in name order; stop at the first refusal.

    DIRECTORY may also be an archive as the daemon writes it: year folders, .sha256 sidecars and numbered
    copies of datasets delivered twice are understood. Datasets already imported into production under the
    same name are skipped, so a replay that stopped can be run again once the cause is fixed.
    """
    with _exit_codes(), _pipeline() as pipeline:
        plugin = _register(register)
        if not directory.is_dir():
            raise UsageError(f"{directory} is not a directory")
        pipeline.migrate()
        for name, path in inbox.replayable(directory):
            # Decided under the register lock: a daemon may import the same datasets meanwhile.
            with pipeline.lock(plugin.name, wait_s=float(state.settings.daemon["lock_wait_s"])):
                if name in pipeline.imported_datasets(plugin):
                    out.print(f"{plugin.name} {path.name}: already imported, skipped")
                    continue
                dataset = path if path.name == name else inbox.under_name(path, name, pipeline.scratch.path)
                _print_summary(_import_with_progress(pipeline, plugin, dataset, force=force))


@app.command("status")
def status_command() -> None:
    """The state of every register, as /status reports it, for monitoring: reads, never creates or migrates.

    Exit codes follow the monitoring convention: 0 OK; 1 warning (a register is overdue); 2 critical (a register
    is locked, or the production database is unreachable or not at the expected schema).
    """
    with _exit_codes():
        checker = HealthChecker(state.settings, discover(), SystemClock())
        try:
            report = checker.check()
        finally:
            checker.close()
        out.print(report.as_text(), end="")
        if any(item.locked for item in report.registers) or report.database_error:
            raise typer.Exit(2)
        if any(item.overdue for item in report.registers):
            raise typer.Exit(1)


@app.command()
def unlock(register: RegisterArg) -> None:
    """Let a register import again after an operator has dealt with the dataset that locked it."""
    with _exit_codes():
        plugin = _register(register)
        reason = inbox.unlock(state.settings.inbox, plugin.name)
        if reason:
            out.print(f"{plugin.name}: unlocked (was: {reason.splitlines()[0]})")
        else:
            out.print(f"{plugin.name}: not locked")


@app.command()
def run() -> None:
    """Run the importer daemon: watch every register's inbox and import datasets as they arrive.

    Serves /status, /metrics and the read-only façades on STAMDATA_LISTEN; stops cleanly on SIGTERM/SIGINT (exit 0).
    """
    from importer.daemon.loop import Daemon  # the daemon's web stack is only loaded by the command that needs it

    with _exit_codes():
        code = Daemon(state.settings, discover()).run()
    raise typer.Exit(code)


@app.command()
def serve() -> None:
    """Serve the read-only façades (replication feed, lookups) and /status alone, without importing.

    For hosts that only answer queries: reads with the façade account (STAMDATA_FACADE_URL, default the
    production URL), listens on STAMDATA_LISTEN, stops on SIGTERM/SIGINT. It never migrates or writes.
    """
    from importer.http.serve import serve as serve_facades  # the web stack is only loaded by the commands that serve

    with _exit_codes():
        serve_facades(state.settings, discover())


@app.command("migrate")
def migrate_command() -> None:
    """Upgrade the preflight and production databases to the newest schema."""
    with _exit_codes(), _pipeline() as pipeline:
        pipeline.migrate()
        for name, revision in pipeline.revisions().items():
            out.print(f"{name}: at {revision}")


def _register(name: str) -> Register:
    return lookup(discover(), name)


@contextmanager
def _pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline(state.settings)
    try:
        yield pipeline
    finally:
        pipeline.close()


@contextmanager
def _exit_codes() -> Iterator[None]:
    try:
        yield
    except ImporterError as error:
        print(mask_cpr(f"{type(error).__name__}: {error}"), file=sys.stderr)
        raise typer.Exit(error.exit_code) from None
    except sa.exc.DBAPIError as error:
        print(mask_cpr(f"InfrastructureError: database error: {error.orig}"), file=sys.stderr)
        raise typer.Exit(3) from None


def _import_with_progress(
    pipeline: Pipeline, register: Register, path: Path, *, force: bool, validate_only: bool = False
) -> RunSummary:
    """A progress bar through the stages on a terminal; plain log lines otherwise."""
    if not sys.stderr.isatty():
        return pipeline.import_dataset(register, path, force=force, validate_only=validate_only)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("starting", total=3)

        def stage(name: str) -> None:
            progress.update(task, description=name, advance=0 if name == "parse" else 1)

        return pipeline.import_dataset(register, path, force=force, validate_only=validate_only, on_stage=stage)


def _print_summary(summary: RunSummary) -> None:
    verb = "imported" if summary.committed else "validated, rolled back"
    counts = summary.counts
    out.print(f"{summary.register} {summary.dataset}: {verb} (run {summary.run_id}, version {summary.version}, "
              f"valid from {summary.valid_from:%Y-%m-%d %H:%M:%S})")
    out.print(f"  rows read {counts.rows_read}, inserted {counts.inserted}, updated {counts.updated}, "
              f"closed {counts.closed}, unchanged {counts.unchanged}, warnings {counts.warnings}")
    for line in summary.warnings + summary.notes:
        out.print(f"  warning: {mask_cpr(line)}")


def main() -> None:
    app()
