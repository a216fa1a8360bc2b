"""`stamdata-importer`: the operator's command line.

Exit codes: 0 done; 1 dataset refused (data error, message on stderr names file, line and rule);
2 usage error; 3 infrastructure error (database unreachable, disk full and the like).
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url

from importer import __version__
from importer.clock import SystemClock
from importer.config import Settings, check_registers, load_settings, parse_listen
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
    On the embedded SQLite default, a first start creates a local development client and prints its token.
    """
    from importer.daemon.loop import Daemon  # the daemon's web stack is only loaded by the command that needs it

    with _exit_codes():
        if make_url(state.settings.production_url).get_backend_name() == "sqlite":
            _local_development_client()
        code = Daemon(state.settings, discover()).run()
    raise typer.Exit(code)


LOCAL_CLIENT = "local-dev"


def _local_development_client() -> None:
    """The newcomer's path stays one command: on an embedded database without any client, one client with every
    scope, its token printed once with an example request. Never on a server database."""
    from importer.http import clients

    with _pipeline() as pipeline:
        pipeline.migrate()
        with pipeline.production.begin() as connection:
            if clients.all_clients(connection):
                return
            token = clients.add(connection, LOCAL_CLIENT, clients.known_scopes(discover()),
                                clients.known_scopes(discover()), _now())
    host, port = parse_listen(state.settings.listen)
    out.print(f"Created the local development client {LOCAL_CLIENT} with every scope. Its token (shown once):")
    out.print(f"  {token}")
    out.print(f"  curl -H 'Authorization: Bearer {token}' "
              f"http://{host}:{port}/replication/autorisationsregisteret/autorisation/v1")


def _now() -> datetime:
    return SystemClock().now().replace(microsecond=0, tzinfo=None)


clients_app = typer.Typer(no_args_is_help=True, help="API clients: who may read the façades, with which scopes.")
app.add_typer(clients_app, name="clients")


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="The client's name, e.g. region-h-epj (recorded in the audit trail).")],
    scope: Annotated[list[str], typer.Option("--scope", help="A scope, repeatable: feed:<register>, "
                                             "lookup:<register>, notifications, testdata, operator.")],
    certificate_subject: Annotated[str | None, typer.Option(
        "--certificate-subject", help="Mutual TLS: the client certificate's subject (RFC 4514, e.g. "
                                      "'CN=epj.example,O=Region H,C=DK') that identifies this client.")] = None,
    no_token: Annotated[bool, typer.Option("--no-token", help="Certificate only: issue no bearer token.")] = False,
) -> None:
    """Add a client. Its new token is printed once, as the last line; only its hash is kept."""
    from importer.http import clients

    with _exit_codes():
        if no_token and certificate_subject is None:
            raise UsageError("--no-token needs --certificate-subject: the client would have no credential")
        with _pipeline() as pipeline:
            pipeline.migrate()
            with pipeline.production.begin() as connection:
                token = clients.add(connection, name, scope, clients.known_scopes(discover()), _now(),
                                    certificate_subject=certificate_subject, with_token=not no_token)
        out.print(f"client {name} added with scopes {' '.join(sorted(set(scope)))}"
                  + (f" and certificate subject {certificate_subject}" if certificate_subject else ""))
        if token is not None:
            out.print("its token, shown only now (send it as Authorization: Bearer <token>):")
            print(token)  # plain, as the last line: scripts take it with tail -1


@clients_app.command("list")
def clients_list() -> None:
    """Every client: name, scopes, certificate subject, when it was added and revoked. Never a token."""
    from importer.http import clients

    with _exit_codes(), _pipeline() as pipeline:
        pipeline.migrate()
        with pipeline.production.connect() as connection:
            for client in clients.all_clients(connection):
                state_text = f"revoked {client.revoked:%Y-%m-%d %H:%M:%S}" if client.revoked else "active"
                subject = f"  certificate {client.certificate_subject}" if client.certificate_subject else ""
                out.print(f"{client.name}  {state_text}  added {client.created:%Y-%m-%d %H:%M:%S}  "
                          f"scopes {' '.join(sorted(client.scopes))}{subject}")


@clients_app.command("revoke")
def clients_revoke(name: Annotated[str, typer.Argument(help="The client to revoke.")]) -> None:
    """Revoke a client: its token and certificate stop working on every host at once. The name stays taken."""
    from importer.http import clients

    with _exit_codes(), _pipeline() as pipeline:
        pipeline.migrate()
        with pipeline.production.begin() as connection:
            changed = clients.revoke(connection, name, _now())
        out.print(f"client {name} revoked" if changed else f"client {name} was revoked already")
        if changed:
            log.info("client revoked", client=name)


testdata_app = typer.Typer(no_args_is_help=True, help="Test data (test environments only, testdata_enabled): dump, "
                                                       "restore and reset a person's register data.")
app.add_typer(testdata_app, name="testdata")


def _testdata_enabled() -> None:
    if not state.settings.daemon["testdata_enabled"]:
        raise UsageError("test data is not enabled here (testdata_enabled = false: never in production; set "
                         "STAMDATA_TESTDATA_ENABLED=true in a test environment)")


@testdata_app.command("dump")
def testdata_dump(
    register: RegisterArg,
    cpr: Annotated[str | None, typer.Argument(help="The person (10 digits); none for a register without persons.")]
    = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the dump here (default: stdout).")] = None,
) -> None:
    """Dump everything the register holds about a person, history included, as DumpData (base64 of gzip)."""
    from importer.load.testdata import TestData

    with _exit_codes():
        _testdata_enabled()
        with _pipeline() as pipeline:
            data = TestData(pipeline).dump(_register(register), cpr)
        if output is None:
            print(data)
        else:
            output.write_text(data + "\n", encoding="ascii")
            out.print(f"{register}: dump written to {output}", highlight=False)


@testdata_app.command("restore")
def testdata_restore(
    register: RegisterArg,
    file: Annotated[Path, typer.Argument(help="A dump (DumpData) file; - for stdin.")],
    to: Annotated[str | None, typer.Option("--to", help="Restore onto this person instead (10 digits).")] = None,
    restore_at_date: Annotated[datetime | None, typer.Option(
        "--restore-at-date", formats=["%Y-%m-%d"],
        help="Move every date by (this date - the dump's date), so it is valid again as when taken.")] = None,
) -> None:
    """Restore a dump onto its person or another; prints the authorisation numbers restored."""
    from importer.load.testdata import TestData

    with _exit_codes():
        _testdata_enabled()
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="ascii", errors="replace")
        except OSError as error:
            raise UsageError(f"cannot read {file}: {error.strerror}") from None
        with _pipeline() as pipeline:
            restored = TestData(pipeline).restore(_register(register), text, to,
                                                  restore_at_date.date() if restore_at_date else None)
        whom = f" for {mask_cpr(restored.person)}" if restored.person else ""
        out.print(f"{register}: restored {restored.rows} row(s){whom}, dates moved {restored.shift_days} day(s)")
        for old, new in sorted(restored.keys.items()):
            out.print(f"  {new}" + (f" (was {old}: that number has history here)" if new != old else ""))


@testdata_app.command("reset")
def testdata_reset(register: RegisterArg, cpr: Annotated[str, typer.Argument(help="The person (10 digits).")]) -> None:
    """Close the person's open rows (the feed carries it) and forget their test keys."""
    from importer.load.testdata import TestData

    with _exit_codes():
        _testdata_enabled()
        with _pipeline() as pipeline:
            reset = TestData(pipeline).reset(_register(register), cpr)
        out.print(f"{register}: reset {mask_cpr(reset.person)}: {reset.closed} open row(s) closed, "
                  f"{len(reset.keys)} test key(s) forgotten")


@app.command("audit")
def audit_command(
    cpr: Annotated[str, typer.Option("--cpr", help="The person's CPR number (10 digits).")],
    since: Annotated[datetime | None, typer.Option("--since", formats=["%Y-%m-%d"],
                                                   help="Only accesses from this date (yyyy-MM-dd, UTC).")] = None,
) -> None:
    """List who looked a person up: time (UTC), client, endpoint, oldest first."""
    from importer.http import audit

    with _exit_codes():
        if not (len(cpr) == 10 and cpr.isascii() and cpr.isdigit()):
            raise UsageError("--cpr must be 10 digits")
        with _pipeline() as pipeline:
            pipeline.migrate()
            with pipeline.production.connect() as connection:
                found = audit.accesses(connection, cpr, since)
        for access in found:
            out.print(f"{access.time:%Y-%m-%d %H:%M:%S}  {access.client}  {access.endpoint}")
        out.print(f"{len(found)} access(es) to {mask_cpr(cpr)}" + (f" since {since:%Y-%m-%d}" if since else ""))


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
