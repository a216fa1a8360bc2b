"""The replication feed over HTTP: one route per declared view, Atom by default, JSON on request.

The protocol itself (tokens, the page query, rendering) is in importer/http/feed.py; this module is the web side:
parameters and their validation, content negotiation, links to the next page, and the OpenAPI examples that
are rendered from each view's own fields.
"""

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from importer.clock import whole_seconds
from importer.http import consistency
from importer.http import feed as feeds
from importer.http.database import Behind, FacadeDatabase
from importer.http.problems import PROBLEM_RESPONSES, problem

ATOM = "application/atom+xml"

OFFSET_PATTERN = r"^([0-9]{20}|0?)$"


class FeedEntryModel(BaseModel):
    id: str
    token: str
    updated: str
    content: dict[str, Any]


class FeedPageModel(BaseModel):
    id: str
    view: str
    updated: str
    offset: str
    next: str
    entries: list[FeedEntryModel]


def wants_json(accept: str) -> bool:
    """Atom is the protocol's default; JSON when the client prefers it (at equal preference, the first listed)."""
    best: tuple[float, str] = (0.0, "atom")
    for part in accept.split(","):
        media, *params = (item.strip() for item in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        kind = "json" if media.lower() in {"application/json", "application/*+json"} else (
            "atom" if media.lower() in {ATOM, "application/xml", "text/xml", "application/*", "*/*"} else "")
        if kind and quality > best[0]:
            best = (quality, kind)
    return best[1] == "json"


def replication_router(views: Sequence[feeds.Feed], database: FacadeDatabase) -> APIRouter:
    router = APIRouter(tags=["replication"])
    for view in views:
        router.add_api_route(
            f"/replication/{view.path}",
            _feed_endpoint(view, database),
            methods=["GET"],
            name=f"replication {view.path}",
            summary=f"Replicate {view.path}",
            description=(
                f"Rows of `{view.table.name}` ordered by (ModifiedDate, PID) after `offset`, at most "
                f"min(maxRecords, {feeds.MAX_PAGE}). Store the token of the last entry and ask again; an "
                "empty page means caught up. Atom 1.0 by default, JSON with `Accept: application/json`. A 503 "
                "with Retry-After: no database of this host has reached the token yet (a replica); ask again "
                "with the same token."
            ),
            response_class=Response,
            responses={
                200: {
                    "description": "One page of the feed",
                    "model": FeedPageModel,  # documented in components, so its schema's references resolve
                    "content": {
                        ATOM: {"schema": {"type": "string"}, "example": _atom_example(view)},
                        "application/json": {"example": _json_example(view)},
                    },
                },
                **PROBLEM_RESPONSES,
            },
        )
    return router


def _feed_endpoint(view: feeds.Feed, database: FacadeDatabase) -> Callable[..., Response]:
    def endpoint(
        request: Request,
        offset: Annotated[str, Query(
            pattern=OFFSET_PATTERN,
            description="The last token read (20 digits: ModifiedDate epoch seconds + PID); 0 or empty = start.",
            examples=["0", "17637696000000000042"],
        )] = "",
        max_records: Annotated[int, Query(
            alias="maxRecords", ge=1, description=f"Page size, capped at {feeds.MAX_PAGE}.", examples=[100],
        )] = feeds.MAX_PAGE,
    ) -> Response:
        after = feeds.Token.parse(offset)
        try:  # only from a database that has reached the token (importer/http/consistency.py)
            entries = consistency.read_page(database, view, after, max_records)
        except Behind as behind:
            return problem(503, "Service Unavailable", str(behind), headers={"Retry-After": str(behind.retry_after_s)})
        now = whole_seconds(database.clock.now())
        if wants_json(request.headers.get("accept", "")):
            return Response(feeds.render_json(view, entries, after, now), media_type="application/json")
        size = feeds.page_size(max_records)
        last = entries[-1].token if entries else after
        links = {"self": f"/replication/{view.path}?offset={after}&maxRecords={size}",
                 "next": f"/replication/{view.path}?offset={last}&maxRecords={size}"}
        # The charset named: a browser would otherwise guess, and show Ã˜jvind.
        return Response(feeds.render_atom(view, entries, now, links), media_type=f"{ATOM}; charset=utf-8")

    return endpoint


def _example_entry(view: feeds.Feed) -> feeds.Entry:
    moment = datetime(2026, 11, 22, 3, 15, 7)
    values = tuple((name, _example_value(column)) for name, column in view.fields)
    return feeds.Entry(feeds.Token.of(moment, 42), moment, values)


def _example_value(column: sa.Column[Any]) -> Any:
    if column.name == "ValidTo":
        return datetime(2999, 12, 31)
    python_type: Any
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    return {datetime: datetime(2026, 11, 22), date: date(2026, 11, 22), int: 1}.get(python_type, "…")


def _atom_example(view: feeds.Feed) -> str:
    now = datetime(2026, 11, 22, 3, 15, 7)
    return feeds.render_atom(view, [_example_entry(view)], now, {})


def _json_example(view: feeds.Feed) -> Any:
    return json.loads(feeds.render_json(view, [_example_entry(view)], feeds.START, datetime(2026, 11, 22)))
