"""The operator's page at `/`: every register's state and its import history at a glance, and the one action an
operator takes there, unlocking a register.

What it shows comes from where the rest of the importer keeps it: the state from the same `HealthChecker` that
answers /status (locked with the refusal's reason, running, overdue, the last success and the last attempt), the
history of the last runs from each register's ImportStatus table, the feed's head per view from the views
themselves, and the inbox queue from the running importer, which knows why each waiting dataset is not taken yet
(`stamdata-importer serve` runs no importer: there the page lists what lies in the inbox, if this host has it,
and says that the importer host decides). Everything is rendered on the server: the state table and the charts
(inline SVG) read without JavaScript, and the page loads nothing from outside (production hosts are offline; a
Content-Security-Policy makes the browser hold the page to that). It holds no personal data: reasons and
messages are CPR-masked as on /status, which is as open.

Unlocking is a `POST /registers/{register}/unlock` with the `operator` scope and a confirmation (the register's
name repeated, and optionally the id of the lock the operator saw, so a lock that changed meanwhile is not lifted
blind). A bearer token cannot be sent by a plain HTML form, so the page's form is shown and sent by a small script
of our own (`static/dashboard.js`); the same request works with curl, and the page prints that line and the CLI's
`stamdata-importer unlock`. It runs the CLI's code (`inbox.unlock`) and is logged with the client's name. Only the
importer's own app offers it: `serve` answers queries and never changes the importer's files.

`/docs` is Swagger UI, served from files vendored in `static/swagger-ui/` (see its README.md) instead of FastAPI's
default, which loads them from a CDN.
"""

import asyncio
import hashlib
import html
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Protocol

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from importer import __version__
from importer.db import table_exists
from importer.errors import ImporterError
from importer.http import feed as feeds
from importer.http.access import Access, Caller, RequireScope
from importer.http.health import HealthChecker, HealthReport, RegisterHealth
from importer.http.problems import PROBLEM_RESPONSES, ProblemDetails
from importer.load import inbox
from importer.load.status import FAILURE, ImportStatus, PastRun
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

STATIC = Path(__file__).with_name("static")
HISTORY_RUNS = 90
OPERATOR_SCOPE = "operator"
UNLOCK_PATH = "/registers/{register}/unlock"

# The page and its script load nothing from elsewhere, run no inline script and post nowhere else.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# Swagger UI sets inline styles and draws icons from data: URIs; everything else stays on this host as well.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


# --- The inbox queue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """A dataset in a register's inbox that is not imported yet, and why."""

    path: Path
    reason: str


class Importer(Protocol):
    """What the running importer (the daemon) tells the page and lets it do."""

    def queue(self, register: str) -> list[Waiting]:
        """The register's waiting datasets in import order, each with the reason it is not taken yet."""
        ...

    def wake(self, register: str) -> None:
        """Look at the register's inbox now (after an unlock) rather than at the next rescan."""
        ...


def explain_queue(root: Path, register: str, head_reason: Callable[[Path], str], busy: bool = False) -> list[Waiting]:
    """A register's queue in import order: what is claimed, then what waits in the inbox. Only the first waiting
    dataset has a reason of its own (`head_reason`); the others wait for it (nothing overtakes a dataset that is not
    ready), and while the register is locked everything waits for the unlock."""
    locked = inbox.lock_reason(root, register) is not None
    items: list[Waiting] = []
    for entry in inbox.claimed(root, register):
        if busy:
            reason = "being imported now"
        elif locked:
            reason = "claimed (in .processing/): imported first once the register is unlocked"
        else:
            reason = "claimed (in .processing/): imported next"
        items.append(Waiting(entry, reason))
    first = items[0].path.name if items else None
    for entry in inbox.pending(root, register):
        if locked:
            reason = "held: the register is locked, nothing is imported until an operator unlocks it"
        elif first is not None:
            reason = f"after {first}: a register's datasets are imported one at a time, in name order"
        else:
            first = entry.name
            reason = head_reason(entry)
        items.append(Waiting(entry, reason))
    return items


SERVE_ONLY = ("no importer runs in this process (stamdata-importer serve answers queries only): the importer host "
              "takes it when it is ready")


def queue_on_disk(root: Path, register: str) -> list[Waiting] | None:
    """Without an importer in this process: what lies in the inbox, if this host has it (None: it has not)."""
    if not inbox.register_dir(root, register).is_dir():
        return None
    return explain_queue(root, register, lambda _entry: SERVE_ONLY)


# --- What the page shows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    view: str
    token: str | None
    modified: datetime | None


@dataclass(frozen=True)
class Overview:
    now: datetime
    report: HealthReport
    history: Mapping[str, Sequence[PastRun]]
    heads: Sequence[Head]
    queues: Mapping[str, Sequence[Waiting] | None]
    unreadable: str | None  # why the history and the feed could not be read
    locks: Mapping[str, str]  # register -> lock_id of its LOCKED file


def lock_id(reason: str) -> str:
    """A short fingerprint of a LOCKED file's text: the page sends it back, so an unlock lifts the lock it showed."""
    return hashlib.sha256(reason.encode("utf-8")).hexdigest()[:16]


class Dashboard:
    def __init__(self, health: HealthChecker, importer: Importer | None) -> None:
        self.health = health
        self.importer = importer
        self.views = feeds.bind_views(health.registers.values())

    @property
    def root(self) -> Path:
        return self.health.settings.inbox

    async def overview(self) -> Overview:
        """Everything the page shows, within the health check's timeout whatever the database does."""
        try:
            return await asyncio.wait_for(run_in_threadpool(self._read), timeout=self.health.timeout_s)
        except TimeoutError:
            report = await run_in_threadpool(self.health.unanswered)
            return await run_in_threadpool(self._read, report)

    def _read(self, report: HealthReport | None = None) -> Overview:
        history: dict[str, list[PastRun]] = {}
        heads: list[Head] = []
        unreadable: str | None = None
        if report is None:
            report = self.health.check()
            if report.database_error is None:
                try:
                    history, heads = self._read_database()
                except (sa.exc.SQLAlchemyError, ImporterError, OSError) as error:
                    detail = str(getattr(error, "orig", None) or error).strip()
                    unreadable = mask_cpr(f"production database unreadable: {detail}".splitlines()[0])
        unreadable = unreadable or report.database_error
        locks = {name: lock_id(reason) for name in self.health.registers
                 if (reason := inbox.lock_reason(self.root, name)) is not None}
        return Overview(self.health.clock.now(), report, history, heads, self._queues(), unreadable, locks)

    def _read_database(self) -> tuple[dict[str, list[PastRun]], list[Head]]:
        history: dict[str, list[PastRun]] = {}
        heads: list[Head] = []
        with self.health.connect() as connection:
            for name, register in self.health.registers.items():
                status = ImportStatus.of(register)
                history[name] = (status.history(connection, HISTORY_RUNS)
                                 if table_exists(connection, status.table.name) else [])
            for view in self.views:
                token = feeds.read_head(connection, view) if table_exists(connection, view.table.name) else None
                heads.append(Head(view.path, None, None) if token is None else
                             Head(view.path, str(token), token.modified_at))
        return history, heads

    def _queues(self) -> dict[str, Sequence[Waiting] | None]:
        queues: dict[str, Sequence[Waiting] | None] = {}
        for name in self.health.registers:
            try:
                if self.importer is not None:
                    queues[name] = self.importer.queue(name)
                else:
                    queues[name] = queue_on_disk(self.root, name)
            except OSError as error:  # an inbox on a failing disk: say so, the rest of the page still shows
                log.warning("inbox unreadable for the operator page", register=name, reason=str(error))
                queues[name] = [Waiting(self.root / name, mask_cpr(f"the inbox cannot be read: {error}"))]
        return queues


# --- The unlock action -----------------------------------------------------------------------------------------


class UnlockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"confirm": "autorisation"}]})

    confirm: str = Field(max_length=100, description="The register's name again: the operator's confirmation.")
    lock: str | None = Field(default=None, pattern="^[0-9a-f]{16}$",
                             description="The id of the lock as the operator's page shows it (optional): if the "
                                         "register is locked for another reason meanwhile, nothing is unlocked (409).")


class UnlockAnswer(BaseModel):
    name: str = Field(alias="register")  # `register` would shadow BaseModel.register
    unlocked: bool = Field(description="false when the register was not locked")
    was: str | None = Field(default=None, description="The first line of the lock's reason, CPR numbers masked.")


def unlock_register(dashboard: Dashboard, register: str, request: UnlockRequest, caller: Caller) -> UnlockAnswer:
    if register not in dashboard.health.registers:
        raise HTTPException(404, "no register of that name")
    if request.confirm != register:
        raise HTTPException(422, "confirm must repeat the register's name")
    current = inbox.lock_reason(dashboard.root, register)
    if current is not None and request.lock is not None and request.lock != lock_id(current):
        raise HTTPException(409, "the register is locked for another reason than the one shown: reload the page")
    reason = inbox.unlock(dashboard.root, register)  # what `stamdata-importer unlock` does
    if reason is None:
        log.info("unlock asked for a register that is not locked", register=register, client=caller.name)
        return UnlockAnswer(register=register, unlocked=False)
    was = mask_cpr((reason.strip().splitlines() or ["locked"])[0])
    log.warning("register unlocked by an operator", register=register, client=caller.name, was=was, via="http")
    if dashboard.importer is not None:
        dashboard.importer.wake(register)
    return UnlockAnswer(register=register, unlocked=True, was=was)


# --- Wiring -----------------------------------------------------------------------------------------------------


def install(app: FastAPI, health: HealthChecker, *, importer: Importer | None = None, access: Access | None = None,
            metrics: bool = False, scoped: dict[str, str] | None = None) -> None:
    """`/`, `/docs` and their static files; with an importer and client access also the unlock action (its scope
    noted in `scoped` for the OpenAPI document)."""
    dashboard = Dashboard(health, importer)
    can_unlock = importer is not None and access is not None
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def operator_page(request: Request) -> Response:
        overview = await dashboard.overview()
        body = render_page(overview, base=str(request.base_url), metrics=metrics, can_unlock=can_unlock)
        return Response(body, media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, "Content-Security-Policy": PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> Response:
        return Response(DOCS_PAGE, media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, "Content-Security-Policy": DOCS_POLICY})

    if importer is None or access is None:
        return
    guard = RequireScope(access, OPERATOR_SCOPE)
    if scoped is not None:
        scoped[UNLOCK_PATH] = OPERATOR_SCOPE
    answers: dict[int | str, dict[str, object]] = {
        400: {"model": ProblemDetails, "description": "A body that cannot be parsed"},
        404: {"model": ProblemDetails, "description": "No register of that name"},
        409: {"model": ProblemDetails, "description": "Locked for another reason than the one confirmed"},
        **PROBLEM_RESPONSES,
    }

    @app.post(UNLOCK_PATH, tags=["operations"], response_model=UnlockAnswer, responses=answers,
              summary="Unlock a register after its refused dataset was dealt with",
              description="What `stamdata-importer unlock REGISTER` does: removes the register's LOCKED file, so the "
                          "importer takes the register's datasets again. Needs the `operator` scope and the "
                          "register's name as confirmation; logged with the client's name.")
    def unlock(register: Annotated[str, PathParameter(pattern="^[a-z][a-z0-9_-]{0,63}$")], request: UnlockRequest,
               caller: Annotated[Caller, Depends(guard)]) -> UnlockAnswer:  # sync: file system work in a thread
        return unlock_register(dashboard, register, request, caller)


# --- Rendering ---------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return '<span class="none">never</span>'
    shown = f'<time datetime="{moment:%Y-%m-%dT%H:%M:%S}Z">{moment:%Y-%m-%d %H:%M:%S} UTC</time>'
    if now is not None:
        shown += f' <span class="age">({_age(now - moment)})</span>'
    return shown


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min ago"
    return f"{hours // 24} days ago"


def _seconds(value: float) -> str:
    if value < 1:
        return "<1 s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def _size(path: Path) -> tuple[int, datetime | None]:
    """Total size and newest modification (naive UTC) of an inbox entry; links are not followed."""
    try:
        if not path.is_dir() or path.is_symlink():
            stat = path.lstat()
            return stat.st_size, _utc(stat.st_mtime)
        size, newest = 0, path.stat().st_mtime
        for directory, _, names in os.walk(path):
            for name in names:
                stat = Path(directory, name).lstat()
                size, newest = size + stat.st_size, max(newest, stat.st_mtime)
        return size, _utc(newest)
    except OSError:
        return 0, None


def _utc(epoch: float) -> datetime:
    return datetime(1970, 1, 1) + timedelta(seconds=int(epoch))


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


STATES = {"ok": "OK", "running": "running", "overdue": "overdue", "locked": "locked", "unknown": "unknown"}


def state_of(item: RegisterHealth, database_error: str | None) -> str:
    if item.locked is not None:
        return "locked"
    if item.last is not None and item.last.ended is None:
        return "running"
    if item.overdue:
        return "overdue"
    if database_error is not None:
        return "unknown"
    return "ok"


def _refused(run: PastRun) -> bool:
    return run.outcome == FAILURE and (run.message or "").startswith("refused")


def _duration(run: PastRun, now: datetime) -> float:
    return max(0.0, ((run.ended or now) - run.started).total_seconds())


def render_page(overview: Overview, *, base: str, metrics: bool, can_unlock: bool) -> str:
    report = overview.report
    now = overview.now
    links = [("status", "/status", "the health check (text; ?format=json)")]
    if metrics:
        links.append(("metrics", "/metrics", "Prometheus metrics"))
    links += [("openapi.json", "/openapi.json", "the OpenAPI document"), ("docs", "/docs", "the API documentation")]
    nav = "".join(f'<li><a href="{_e(href)}">{_e(text)}</a> <span class="hint">{_e(hint)}</span></li>'
                  for href, text, hint in links)
    overall = ('<p class="overall overall-ok" role="status">Status: <strong>OK</strong></p>' if report.ok else
               f'<p class="overall overall-error" role="alert">Status: <strong>ERROR</strong> '
               f"{_e(report.reason or '')}</p>")
    problems = "".join(f'<p class="problem">{_e(problem)}</p>' for problem in report.problems)
    locked = [item for item in report.registers if item.locked is not None]
    sections = [
        _registers_section(overview),
        _unlock_section(overview, locked, base, can_unlock) if locked else "",
        _queue_section(overview),
        _history_section(overview),
        _feed_section(overview),
    ]
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{"OK" if report.ok else "ERROR"} · stamdata importer</title>
<link rel="icon" href="static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/dashboard.css">
<script src="static/dashboard.js" defer></script>
</head>
<body>
<header>
<h1>Stamdata importer</h1>
{overall}{problems}
<nav aria-label="Machine-readable views"><ul>{nav}</ul></nav>
</header>
<main>
{"".join(sections)}
</main>
<footer>
<p>Generated {_when(now)} by stamdata importer {_e(__version__)}. This page holds no personal data (CPR numbers in
reasons are masked) and is as open as <a href="status">/status</a>; unlocking needs a client with the
<code>operator</code> scope.</p>
</footer>
</body>
</html>
"""


def _registers_section(overview: Overview) -> str:
    report = overview.report
    rows = []
    for item in report.registers:
        state = state_of(item, report.database_error)
        detail = ""
        if item.locked is not None:
            detail = (f'<p class="reason">{_e(item.locked)}</p>'
                      f'<p class="command">Unlock: <code>stamdata-importer unlock {_e(item.register)}</code> '
                      f'(<a href="#unlock-{_e(item.register)}">how</a>)</p>')
        elif state == "overdue":
            detail = f'<p class="reason">no successful import within {item.max_age_days:g} days</p>'
        elif state == "running" and item.last is not None:
            detail = f'<p class="reason">importing {_e(mask_cpr(item.last.dataset or ""))}</p>'
        elif state == "unknown":
            detail = '<p class="reason">the database cannot be read</p>'
        elif item.last is None:
            detail = '<p class="reason">no import yet</p>'
        runs = overview.history.get(item.register) or []
        attempt = '<span class="none">never</span>'
        if item.last is not None:
            last = item.last
            outcome = last.outcome.lower()
            message = ""
            if runs and runs[-1].run_id == last.run_id and last.outcome == FAILURE and runs[-1].message:
                message = f'<br><span class="message">{_e(mask_cpr(runs[-1].message.splitlines()[0]))}</span>'
            attempt = (f'{_when(last.started, overview.now)}<br><span class="outcome outcome-{_e(outcome)}">'
                       f'{_e(last.outcome)}</span> {_e(mask_cpr(last.dataset or ""))}'
                       f'{f", {last.rows_changed:,} rows changed" if last.outcome == "SUCCESS" else ""}{message}')
        queue = overview.queues.get(item.register)
        waiting = ('<span class="none">not on this host</span>' if queue is None else
                   f'<a href="#queue-{_e(item.register)}">{len(queue)} waiting</a>' if queue else "none")
        rows.append(
            f'<tr class="register state-{state}" id="register-{_e(item.register)}" data-register="{_e(item.register)}">'
            f'<th scope="row" data-label="Register">{_e(item.register)}</th>'
            f'<td data-label="State"><span class="badge badge-{state}">{STATES[state]}</span>{detail}</td>'
            f'<td data-label="Last success">{_when(item.last_success, overview.now)}</td>'
            f'<td data-label="Last attempt">{attempt}</td>'
            f'<td data-label="Inbox">{waiting}</td></tr>'
        )
    database = (f'<p class="problem">Database: {_e(report.database_error)}</p>' if report.database_error else "")
    return f"""<section id="registers" aria-labelledby="registers-title">
<h2 id="registers-title">Registers</h2>{database}
<table class="registers">
<thead><tr><th scope="col">Register</th><th scope="col">State</th><th scope="col">Last success</th>
<th scope="col">Last attempt</th><th scope="col">Inbox</th></tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>
</section>
"""


def _unlock_section(overview: Overview, locked: Sequence[RegisterHealth], base: str, can_unlock: bool) -> str:
    articles = []
    for item in locked:
        name = _e(item.register)
        url = f"{base.rstrip('/')}/registers/{item.register}/unlock"
        lock = overview.locks.get(item.register, "")
        http_way = ""
        if can_unlock:
            curl = (f"curl -X POST -H 'Authorization: Bearer <token>' -H 'Content-Type: application/json' "
                    f"-d '{{\"confirm\": \"{item.register}\"}}' {url}")
            http_way = f"""<p>or over HTTP, with a client that holds the <code>operator</code> scope:</p>
<pre><code>{_e(curl)}</code></pre>
<form class="unlock-form" hidden data-action="registers/{name}/unlock" data-register="{name}" data-lock="{_e(lock)}">
<p><label>Operator token <input type="password" name="token" autocomplete="off" spellcheck="false"
 placeholder="stm_…"></label> <span class="hint">(left empty, your TLS client certificate identifies you)</span></p>
<p><label>To confirm, type the register's name, <kbd>{name}</kbd>
 <input type="text" name="confirm" required autocomplete="off" spellcheck="false"></label></p>
<p><button type="submit">Unlock {name}</button> <output role="status"></output></p>
</form>"""
        else:
            http_way = "<p>(This process does not import: unlock on the importer host.)</p>"
        articles.append(f"""<article class="unlock" id="unlock-{name}" aria-labelledby="unlock-{name}-title">
<h3 id="unlock-{name}-title">{name} is locked</h3>
<p class="reason">{_e(item.locked or "")}</p>
<p>The refused dataset was moved to <code>inbox/{name}/failed/</code>; nothing of {name} is imported until the
cause is dealt with and the register unlocked. Then, on the importer host:</p>
<pre><code>stamdata-importer unlock {name}</code></pre>
{http_way}
</article>""")
    return f"""<section id="unlock" aria-labelledby="unlock-title">
<h2 id="unlock-title">Locked registers</h2>
{"".join(articles)}
</section>
"""


def _queue_section(overview: Overview) -> str:
    parts = []
    for name, queue in overview.queues.items():
        title = f'<h3 id="queue-{_e(name)}">{_e(name)}</h3>'
        if queue is None:
            parts.append(f'{title}<p class="none">The inbox of {_e(name)} is not on this host.</p>')
            continue
        if not queue:
            parts.append(f'{title}<p class="none">Nothing waiting.</p>')
            continue
        rows = []
        for item in queue:
            size, changed = _size(item.path)
            rows.append(f'<tr><th scope="row" data-label="Dataset">{_e(mask_cpr(item.path.name))}</th>'
                        f'<td data-label="Last changed">{_when(changed, overview.now)}</td>'
                        f'<td data-label="Size">{_e(_bytes(size))}</td>'
                        f'<td data-label="Why it waits" class="why">{_e(item.reason)}</td></tr>')
        parts.append(f"""{title}<table class="queue">
<thead><tr><th scope="col">Dataset</th><th scope="col">Last changed</th><th scope="col">Size</th>
<th scope="col">Why it is not imported yet</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>""")
    return f"""<section id="queue" aria-labelledby="queue-title">
<h2 id="queue-title">Inbox queue</h2>
{"".join(parts)}
</section>
"""


def _history_section(overview: Overview) -> str:
    if overview.unreadable is not None and not overview.history:
        body = f'<p class="problem">The run history cannot be read: {_e(overview.unreadable)}</p>'
    else:
        body = "".join(_history_of(name, overview.history.get(name, ()), overview.now)
                       for name in overview.queues)
    return f"""<section id="history" aria-labelledby="history-title">
<h2 id="history-title">Import history</h2>
<p class="hint">The last {HISTORY_RUNS} runs of each register, oldest on the left: rows inserted, updated and closed
(bars), and how long each run took (points). Refused datasets are marked in red.</p>
{body}
<ul class="legend" aria-label="Legend">
<li><span class="swatch swatch-inserted"></span> inserted</li>
<li><span class="swatch swatch-updated"></span> updated</li>
<li><span class="swatch swatch-closed"></span> closed</li>
<li><span class="swatch swatch-duration"></span> duration</li>
<li><span class="swatch swatch-refused"></span> refused</li>
<li><span class="swatch swatch-failed"></span> failed otherwise (infrastructure, interrupted)</li>
</ul>
</section>
"""


def _history_of(register: str, runs: Sequence[PastRun], now: datetime) -> str:
    name = _e(register)
    if not runs:
        return f'<figure class="history" id="history-{name}"><figcaption>{name}: no runs yet</figcaption></figure>'
    refused = sum(1 for run in runs if _refused(run))
    succeeded = sum(1 for run in runs if run.outcome == "SUCCESS")
    caption = (f"{name}: {len(runs)} run{'s' if len(runs) != 1 else ''}, {succeeded} succeeded"
               f"{f', {refused} refused' if refused else ''}")
    rows = []
    for number, run in enumerate(runs, start=1):
        outcome = "REFUSED" if _refused(run) else run.outcome or "RUNNING"
        message = mask_cpr((run.message or "").splitlines()[0]) if run.outcome == FAILURE and run.message else ""
        rows.append(f'<tr class="outcome-{_e(outcome.lower())}"><td>{number}</td><td>{_when(run.started)}</td>'
                    f'<td>{_e(mask_cpr(run.dataset or ""))}</td><td>{_e(outcome)}</td>'
                    f'<td class="number">{run.inserted:,}</td><td class="number">{run.updated:,}</td>'
                    f'<td class="number">{run.closed:,}</td><td class="number">{_e(_seconds(_duration(run, now)))}</td>'
                    f'<td>{_e(message)}</td></tr>')
    return f"""<figure class="history" id="history-{name}" data-register="{name}">
<figcaption>{caption}</figcaption>
<div class="chart-frame">{chart(register, runs, now)}</div>
<details><summary>The runs as a table</summary>
<div class="table-frame"><table class="runs">
<thead><tr><th scope="col">#</th><th scope="col">Started</th><th scope="col">Dataset</th><th scope="col">Outcome</th>
<th scope="col">Inserted</th><th scope="col">Updated</th><th scope="col">Closed</th><th scope="col">Duration</th>
<th scope="col">Message</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></div>
</details>
</figure>
"""


def _nice(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (an axis' top)."""
    if value <= 1:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def chart(register: str, runs: Sequence[PastRun], now: datetime) -> str:
    """The runs as an inline SVG: stacked bars of rows inserted, updated and closed above, the duration of each
    run as a point below; a refused run gets a red band and mark. Each run is one group with its own tooltip."""
    width, left, right, top = 720, 58, 14, 22
    rows_h, gap, duration_h, bottom = 140, 40, 70, 26
    height = top + rows_h + gap + duration_h + bottom
    plot_w = width - left - right
    slot = plot_w / max(len(runs), 15)  # a short history keeps its bars slim, growing to the right
    bar_w = max(slot * 0.72, 1.0)
    rows_base = top + rows_h
    duration_top = rows_base + gap
    duration_base = duration_top + duration_h
    rows_max = _nice(max(run.inserted + run.updated + run.closed for run in runs))
    durations = [_duration(run, now) for run in runs]
    duration_max = _nice(max(durations))
    axes = [
        f'<text class="panel" x="{left}" y="{top - 8}">rows changed</text>',
        f'<text class="panel" x="{left}" y="{duration_top - 8}">duration (s)</text>',
        f'<line class="axis" x1="{left}" y1="{rows_base}" x2="{width - right}" y2="{rows_base}"/>',
        f'<line class="grid" x1="{left}" y1="{top}" x2="{width - right}" y2="{top}"/>',
        f'<line class="axis" x1="{left}" y1="{duration_base}" x2="{width - right}" y2="{duration_base}"/>',
        f'<line class="grid" x1="{left}" y1="{duration_top}" x2="{width - right}" y2="{duration_top}"/>',
        f'<text class="tick" x="{left - 6}" y="{top + 4}">{rows_max:,.0f}</text>',
        f'<text class="tick" x="{left - 6}" y="{rows_base + 4}">0</text>',
        f'<text class="tick" x="{left - 6}" y="{duration_top + 4}">{duration_max:,.0f}</text>',
        f'<text class="tick" x="{left - 6}" y="{duration_base + 4}">0</text>',
    ]
    points: list[str] = []
    bands: list[str] = []  # behind everything, so the axes' text stays readable
    groups: list[str] = []
    for index, (run, seconds) in enumerate(zip(runs, durations, strict=True)):
        x = left + index * slot
        middle = x + slot / 2
        refused = _refused(run)
        kind = "refused" if refused else "failed" if run.outcome == FAILURE else (
            "running" if run.ended is None else "success")
        outcome = "refused" if refused else (run.outcome or "running").lower()
        tip = (f"{mask_cpr(run.dataset or '')}: {outcome}, started {run.started:%Y-%m-%d %H:%M:%S} UTC, "
               f"{_seconds(seconds)}; {run.inserted:,} inserted, {run.updated:,} updated, {run.closed:,} closed")
        if run.outcome == FAILURE and run.message:
            tip += f" — {mask_cpr(run.message.splitlines()[0])}"
        shapes = [f"<title>{_e(tip)}</title>"]
        if kind in {"refused", "failed"}:
            bands.append(f'<rect class="band band-{kind}" x="{x:.1f}" y="{top}" width="{slot:.1f}" '
                         f'height="{duration_base - top}"/>')
            size = min(5.0, slot / 2)
            shapes.append(f'<path class="mark mark-{kind}" d="M{middle - size:.1f},{rows_base - 2 * size - 3:.1f} '
                          f'l{2 * size:.1f},{2 * size:.1f} m0,{-2 * size:.1f} l{-2 * size:.1f},{2 * size:.1f}"/>')
        y = float(rows_base)
        for part, value in (("inserted", run.inserted), ("updated", run.updated), ("closed", run.closed)):
            if value <= 0:
                continue
            h = max(value / rows_max * rows_h, 1.0)
            y -= h
            shapes.append(f'<rect class="bar bar-{part}" x="{middle - bar_w / 2:.1f}" y="{y:.1f}" '
                          f'width="{bar_w:.1f}" height="{h:.1f}"/>')
        point_y = duration_base - seconds / duration_max * duration_h
        points.append(f"{middle:.1f},{point_y:.1f}")
        shapes.append(f'<circle class="point point-{kind}" cx="{middle:.1f}" cy="{point_y:.1f}" '
                      f'r="{4.5 if kind != "success" else 3.5}"/>')
        groups.append(f'<g class="run run-{kind}" data-run="{_e(run.run_id or "")}">{"".join(shapes)}</g>')
    first, last = runs[0].started, runs[-1].started
    axes.append(f'<text class="tick tick-start" x="{left}" y="{height - 6}">{first:%Y-%m-%d %H:%M}</text>')
    if (len(runs) - 1) * slot > 130:  # room for both dates
        axes.append(f'<text class="tick tick-end" x="{left + (len(runs) - 0.5) * slot:.1f}" y="{height - 6}">'
                     f'{last:%Y-%m-%d %H:%M}</text>')
    refusals = sum(1 for run in runs if _refused(run))
    description = (f"{len(runs)} runs of {register} from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC; "
                   f"{refusals} refused; at most {rows_max:,.0f} rows changed and {duration_max:,.0f} s per run")
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-{_e(register)}-desc" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
            f'<desc id="chart-{_e(register)}-desc">{_e(description)}</desc>{"".join(bands)}{"".join(axes)}'
            f'<polyline class="duration-line" points="{" ".join(points)}"/>{"".join(groups)}</svg>')


def _feed_section(overview: Overview) -> str:
    if overview.unreadable is not None and not overview.heads:
        body = f'<p class="problem">The feed cannot be read: {_e(overview.unreadable)}</p>'
    elif not overview.heads:
        body = '<p class="none">No register declares a feed view.</p>'
    else:
        rows = "".join(
            f'<tr><th scope="row" data-label="View"><code>{_e(head.view)}</code></th>'
            f'<td data-label="Newest token"><code class="token">{_e(head.token) if head.token else "—"}</code></td>'
            f'<td data-label="Last change">{_when(head.modified, overview.now) if head.modified else "empty"}</td>'
            f"</tr>"
            for head in overview.heads
        )
        body = f"""<table class="feed">
<thead><tr><th scope="col">View</th><th scope="col">Newest token</th><th scope="col">Last change</th></tr></thead>
<tbody>{rows}</tbody></table>"""
    return f"""<section id="feed" aria-labelledby="feed-title">
<h2 id="feed-title">Replication feed</h2>
<p class="hint">The head of each view: a client that has read up to this token is caught up
(<code>GET /replication/&lt;view&gt;?offset=&lt;token&gt;</code>, scope <code>feed:&lt;register&gt;</code>).</p>
{body}
</section>
"""


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stamdata importer · API documentation</title>
<link rel="icon" href="static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="static/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="static/docs.css">
</head>
<body>
<p class="docs-back"><a href="./">← the operator's page</a></p>
<div id="swagger-ui"></div>
<script src="static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="static/docs.js"></script>
</body>
</html>
"""
