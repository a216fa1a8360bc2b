"""The change-notification service over HTTP (FORMATS.md §7; README, "Change notifications"), scope `notifications`.

JSON under `/notifications/v1`: ID lists (`PUT`/`GET`/`DELETE /idlists/{name}`), pull points (`POST /pullpoints`,
`GET`/`DELETE /pullpoints/{id}`), subscriptions (`POST /subscriptions`, `GET`/`DELETE /subscriptions/{id}`) and
pulls (`POST /pullpoints/{id}/pull`, JSON, or the platform's WS-Notification `Notify` with `Accept:
application/xml`). Everything belongs to the client that made it; another client's is a 404.

Subscribing and pulling write, so the service works through the services' own connection to the primary
(`service_url`; importer/load/subscriptions.py), never the façades' read-only account. A host without a writable
connection to the primary (a `serve` on a replica whose service database is read-only or lacks the tables) answers
503 saying so; it forwards nothing.
"""

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast

import sqlalchemy as sa
from fastapi import APIRouter, Body, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StringConstraints, WithJsonSchema

from importer.clock import Clock, SystemClock, whole_seconds
from importer.db import LazyEngine, create_engine, is_mysql, table_exists
from importer.http.access import caller_of
from importer.http.problems import PROBLEM, ProblemDetails
from importer.load import subscriptions as store
from importer.load.notifications import ID_LENGTH, LOST, event_table
from importer.logs import get_logger
from importer.privacy import mask_cpr

log = get_logger(__name__)

SCOPE = "notifications"
PREFIX = "/notifications/v1"
XML = "application/xml"
WSN = "http://docs.oasis-open.org/wsn/b-2"
SIMPLE_DIALECT = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
ADVIS = "http://nsi.dk/advis/v10"
STAMDATA = "http://nsi.dk/-/stamdata/3.0/notifications"
WRITABLE_CHECK_S = 60.0  # a positive check of the service database is trusted this long

LIST_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
PUBLIC_ID = r"^[0-9a-f]{32}$"
MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no blanks: a UUID, a DGWS MessageID, …

T = TypeVar("T")


class Unwritable(Exception):
    """This host has no writable connection to the primary for the notification service."""


class NotificationService:
    """The notification service's connection: the services' account on the primary, created on first use and
    checked to be writable (not a read-only server, the tables there) before it is trusted."""

    def __init__(self, url: str | None, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self._engine = LazyEngine(lambda: create_engine(url or ""))
        self._checked_at = -1e9

    def now(self) -> datetime:
        return whole_seconds(self.clock.now())

    def engine(self) -> sa.Engine:
        if self.url is None:
            raise Unwritable("this host has no connection to the primary for the notification service (set "
                             "service_url to the services' account on the primary)")
        engine = self._engine.get()
        if time.monotonic() - self._checked_at > WRITABLE_CHECK_S:
            self._check(engine)
            self._checked_at = time.monotonic()
        return engine

    def _check(self, engine: sa.Engine) -> None:
        with engine.connect() as connection:
            if is_mysql(connection) and connection.exec_driver_sql("SELECT @@GLOBAL.read_only").scalar():
                raise Unwritable("the notification service needs the primary, and the service database "
                                 f"{_shown(self.url)} is read-only (a replica?): set service_url to the primary")
            if not table_exists(connection, event_table.name):
                raise Unwritable(f"the service database {_shown(self.url)} has no notification tables: it is not the "
                                 "migrated production database (set service_url to the primary)")

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine().begin() as connection:
            yield connection

    def run(self, work: Callable[[sa.Connection], T], attempts: int = 3) -> T:
        """`work` in one transaction, again (up to `attempts`) when the database chose it as a deadlock's victim."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction() as connection:
                    return work(connection)
            except sa.exc.OperationalError as error:
                if attempt == attempts or not _retryable(error):
                    raise
                log.info("notification transaction retried", reason=type(error.orig).__name__, attempt=attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._engine.dispose()


def _shown(url: str | None) -> str:
    return sa.make_url(url).render_as_string(hide_password=True) if url else "(none)"


def _retryable(error: sa.exc.OperationalError) -> bool:
    code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    return code in {1213, 1205} or "database is locked" in str(error.orig)


# --- Models -------------------------------------------------------------------------------------------------------

# An id sent as a JSON number (a drug id has 11 digits): at most 15 digits, exact in a double wherever it is parsed.
LARGEST_NUMBER = 10**15 - 1


def _id_value(value: Any) -> Any:
    """An id as text: a string as it is, a whole JSON number (a drug id) in decimal; never a boolean."""
    if isinstance(value, bool):
        raise ValueError("an id is a string or a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value <= LARGEST_NUMBER:
            raise ValueError(f"an id given as a number is a whole number from 0 to {LARGEST_NUMBER}")
        return str(value)
    return value


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    return value


# Printable ASCII without blanks, as every id of the registers' topics is (CPR numbers, autorisationsnumre, drug
# ids): one rule in every regex dialect, and no id a database's collation could confuse with another (MariaDB's
# utf8mb4_bin ignores trailing spaces: "X " would collide with "X").
ID_PATTERN = rf"^[\x21-\x7e]{{1,{ID_LENGTH}}}$"
IdValue = Annotated[str, BeforeValidator(_id_value),
                    StringConstraints(pattern=ID_PATTERN),
                    WithJsonSchema({"anyOf": [
                        {"type": "string", "pattern": ID_PATTERN},
                        {"type": "integer", "minimum": 0, "maximum": LARGEST_NUMBER}]})]


class IdListIn(BaseModel):
    ids: list[IdValue] = Field(max_length=store.MAX_LIST, description=(
        "Every id the list holds (replacing what it held): CPR numbers, autorisationsnumre, drug ids. An event "
        "matches when one of its ids equals one of these, within the subscription's topic."),
        examples=[["0101801234", "0A1B2"]])


class IdListOut(BaseModel):
    name: str
    size: int


class IdListDetail(IdListOut):
    ids: list[str]


class Created(BaseModel):
    id: str = Field(examples=["6f1c0d5e2b3a4f1e9d8c7b6a5f4e3d2c"])


class SubscriptionOut(BaseModel):
    id: str
    pullPoint: str
    idList: str
    topic: str
    createdDate: str


class PullPointOut(BaseModel):
    id: str
    createdDate: str
    lastPullDate: str | None
    subscriptions: list[str]


class PullIn(BaseModel):
    messageId: Annotated[str, Field(min_length=1, max_length=200, pattern=MESSAGE_ID.pattern, description=(
        "The request's own id: the same id again within 30 minutes gets the same answer (and takes nothing "
        "more off the pull point)"), examples=["5a0c6a6e-3b53-4b53-9d1e-0c2b7f7e1b11"])]
    max: Annotated[int, BeforeValidator(_not_boolean)] = Field(100, ge=1, le=store.MAX_PULL,
                                                               description="The most notifications to answer")


class NotificationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    sequence: int = Field(description="Increasing within a topic and within an answer")
    topic: str
    action: Literal["created", "changed", "closed", "lost"] = Field(description=(
        "What the import did with the business key; `lost`: a system notification — notifications were lost "
        "(see `reason`), bootstrap again"))
    register_: str = Field(alias="register")  # `register` would shadow BaseModel.register
    datatype: str | None
    id: str | None = Field(description="The id that matched the subscription's ID list (none for `lost`)")
    idType: str | None
    modifiedDate: str = Field(description="The rows' ModifiedDate (the import's transaction time), UTC")
    reason: str | None = Field(None, description="Why notifications were lost (system notifications only)")


class PullOut(BaseModel):
    pullPoint: str
    messageId: str
    notifications: list[NotificationOut]
    more: bool = Field(description="More notifications were waiting when this answer was made")


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def _notification(item: store.Notification) -> dict[str, Any]:
    """A notification as NotificationOut describes it, built directly (a pull answers thousands)."""
    return {"sequence": item.sequence, "topic": item.topic, "action": item.action, "register": item.register,
            "datatype": item.datatype, "id": item.id, "idType": item.id_type, "modifiedDate": _time(item.modified),
            "reason": item.reason}


def pull_json(answer: store.Answer) -> dict[str, Any]:
    return {"pullPoint": answer.pull_point, "messageId": answer.message_id,
            "notifications": [_notification(item) for item in answer.notifications], "more": answer.more}


def notify_xml(answer: store.Answer) -> bytes:
    """The answer as WS-Notification `Notify`, as the platform's notification service hands out: per notification a
    `NotificationMessage` with its `Topic` and a `Message` whose `NotifyContent` carries the matched `id` and
    `idType`, and inside it what the source system says (here `StamdataModification`, or `AdvisLost`)."""
    notify = etree.Element(f"{{{WSN}}}Notify", nsmap={"wsnt": WSN, "advis": ADVIS, "sd": STAMDATA})
    for item in answer.notifications:
        message = etree.SubElement(notify, f"{{{WSN}}}NotificationMessage")
        topic = etree.SubElement(message, f"{{{WSN}}}Topic", Dialect=SIMPLE_DIALECT)
        topic.text = item.topic
        content = etree.SubElement(etree.SubElement(message, f"{{{WSN}}}Message"), f"{{{ADVIS}}}NotifyContent")
        if item.id is not None and item.id_type is not None:
            content.set("id", item.id)
            content.set("idType", item.id_type)
        if item.action == LOST:
            body = etree.SubElement(content, f"{{{STAMDATA}}}AdvisLost")
            _text(body, "Sequence", str(item.sequence))
            _text(body, "Register", item.register)
            _text(body, "ResumedDate", _time(item.modified))
            _text(body, "Reason", item.reason)
            continue
        body = etree.SubElement(content, f"{{{STAMDATA}}}StamdataModification")
        _text(body, "Sequence", str(item.sequence))
        _text(body, "Action", item.action)
        _text(body, "Register", item.register)
        _text(body, "Datatype", item.datatype)
        _text(body, "ModifiedDate", _time(item.modified))
    return bytes(etree.tostring(notify, xml_declaration=True, encoding="UTF-8"))


def _text(parent: Any, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, f"{{{STAMDATA}}}{name}").text = value


# --- The router ---------------------------------------------------------------------------------------------------


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "The body is not JSON", 404: "No such resource of this client",
                 409: "Still used by a subscription", 422: "Invalid input",
                 503: "No writable connection to the primary, or the database is unavailable"}
    return {code: {"model": ProblemDetails, "description": described[code], "content": {PROBLEM: {}}}
            for code in codes}


SAMPLE = store.Answer("6f1c0d5e2b3a4f1e9d8c7b6a5f4e3d2c", "5a0c6a6e-3b53-4b53-9d1e-0c2b7f7e1b11", [
    store.Notification(17, "stamdata/autorisation", "changed", "autorisation", "autorisation", "0101801234",
                       "http://nsi.dk/advis/v10/CPR", datetime(2026, 11, 21, 6, 0, 5), None)], False, False)


def router(service: NotificationService | None, topics: Sequence[str]) -> APIRouter:
    """The service's routes; every one needs the `notifications` scope (the caller includes it guarded)."""
    api = APIRouter(prefix=PREFIX, tags=["change notifications"])
    known = list(topics)

    class SubscriptionIn(BaseModel):
        pullPoint: Annotated[str, Field(pattern=PUBLIC_ID)]
        idList: Annotated[str, Field(pattern=LIST_NAME)]
        topic: str = Field(json_schema_extra={"enum": cast(list[JsonValue], known)}, examples=known[:1])

    def call(work: Callable[[sa.Connection], T]) -> T:
        if service is None:
            raise HTTPException(503, "this host has no writable connection to the primary for the notification "
                                     "service (set service_url)")
        try:
            return service.run(work)
        except Unwritable as error:
            raise HTTPException(503, str(error)) from None
        except store.NotFound as error:
            raise HTTPException(404, str(error)) from None
        except store.Conflict as error:
            raise HTTPException(409, str(error)) from None
        except sa.exc.DBAPIError as error:
            reason = _denied(error)
            if reason is None:
                raise
            raise HTTPException(503, reason) from None

    def now() -> datetime:
        assert service is not None
        return service.now()

    name_path = Annotated[str, Path(pattern=LIST_NAME, description="The ID list's name (the client's own)")]
    point_path = Annotated[str, Path(pattern=PUBLIC_ID, description="The pull point's id")]
    subscription_path = Annotated[str, Path(pattern=PUBLIC_ID, description="The subscription's id")]

    @api.put("/idlists/{name}", response_model=IdListOut, status_code=200, summary="Create or replace an ID list",
             responses={201: {"model": IdListOut, "description": "Created"}, **_problems(400, 422, 503)})
    def put_list(request: Request, response: Response, name: name_path, body: IdListIn) -> IdListOut:
        client = caller_of(request).name
        ids = [str(value) for value in body.ids]
        created, size = call(lambda connection: store.put_list(connection, client, name, ids, now()))
        response.status_code = 201 if created else 200
        return IdListOut(name=name, size=size)

    @api.get("/idlists/{name}", response_model=IdListDetail, summary="An ID list's ids",
             responses=_problems(404, 422, 503))
    def get_list(request: Request, name: name_path) -> IdListDetail:
        client = caller_of(request).name
        ids = call(lambda connection: store.get_list(connection, client, name))
        return IdListDetail(name=name, size=len(ids), ids=ids)

    @api.delete("/idlists/{name}", status_code=204, response_class=Response, summary="Delete an ID list",
                responses=_problems(404, 409, 422, 503))
    def delete_list(request: Request, name: name_path) -> Response:
        client = caller_of(request).name
        call(lambda connection: store.delete_list(connection, client, name))
        return Response(status_code=204)

    @api.post("/pullpoints", response_model=Created, status_code=201, summary="Create a pull point",
              responses=_problems(503))
    def create_pull_point(request: Request) -> Created:
        client = caller_of(request).name
        return Created(id=call(lambda connection: store.create_pull_point(connection, client, now())))

    @api.get("/pullpoints/{point}", response_model=PullPointOut, summary="A pull point and its subscriptions",
             responses=_problems(404, 422, 503))
    def get_pull_point(request: Request, point: point_path) -> PullPointOut:
        client = caller_of(request).name
        info = call(lambda connection: store.pull_point_info(connection, client, point))
        return PullPointOut(id=point, createdDate=_time(info["created"]) or "",  # type: ignore[arg-type]
                            lastPullDate=_time(info["last_pull"]),  # type: ignore[arg-type]
                            subscriptions=info["subscriptions"])  # type: ignore[arg-type]

    @api.delete("/pullpoints/{point}", status_code=204, response_class=Response, summary="Delete a pull point",
                responses=_problems(404, 409, 422, 503))
    def delete_pull_point(request: Request, point: point_path) -> Response:
        client = caller_of(request).name
        call(lambda connection: store.delete_pull_point(connection, client, point))
        return Response(status_code=204)

    @api.post("/subscriptions", response_model=Created, status_code=201,
              summary="Subscribe a pull point to a topic for the ids of an ID list",
              description=f"Only events after the subscription's creation reach it: subscribe first, then bootstrap "
                          f"(the feed or the look-ups), then pull. Topics: {', '.join(known)}.",
              responses=_problems(400, 404, 422, 503))
    def subscribe(request: Request, body: SubscriptionIn) -> Created:
        client = caller_of(request).name
        if body.topic not in known:
            raise HTTPException(422, f"unknown topic; the topics are {', '.join(known)}")
        return Created(id=call(lambda connection: store.subscribe(connection, client, body.pullPoint, body.idList,
                                                                  body.topic, now())))

    @api.get("/subscriptions/{subscription}", response_model=SubscriptionOut, summary="A subscription",
             responses=_problems(404, 422, 503))
    def get_subscription(request: Request, subscription: subscription_path) -> SubscriptionOut:
        client = caller_of(request).name
        info = call(lambda connection: store.subscription_info(connection, client, subscription))
        return SubscriptionOut(id=subscription, pullPoint=str(info["pull_point"]), idList=str(info["id_list"]),
                               topic=str(info["topic"]),
                               createdDate=_time(info["created"]) or "")  # type: ignore[arg-type]

    @api.delete("/subscriptions/{subscription}", status_code=204, response_class=Response,
                summary="Delete a subscription (what it collected stays on its pull point)",
                responses=_problems(404, 422, 503))
    def unsubscribe(request: Request, subscription: subscription_path) -> Response:
        client = caller_of(request).name
        call(lambda connection: store.unsubscribe(connection, client, subscription))
        return Response(status_code=204)

    @api.post("/pullpoints/{point}/pull", response_model=PullOut, summary="Take the oldest notifications",
              description="At most `max`, in order, removed from the pull point once answered. The same `messageId` "
                          "again within 30 minutes gets the same answer, so a client that lost an answer loses "
                          "nothing: it asks again with the same id. `Accept: application/xml` answers "
                          "WS-Notification `Notify`.",
              responses={200: {"content": {"application/json": {}, XML: {
                  "schema": {"type": "string"}, "example": notify_xml(SAMPLE).decode()}}},
                  **_problems(400, 404, 422, 503)})
    def pull(request: Request, point: point_path,
             body: Annotated[PullIn, Body(examples=[{"messageId": "5a0c6a6e-3b53-4b53-9d1e-0c2b7f7e1b11",
                                                     "max": 100}])]) -> Any:
        client = caller_of(request).name
        answer = call(lambda connection: store.pull(connection, client, point, body.messageId, body.max, now()))
        if answer.notifications:
            log.info("notifications pulled", pull_point=point, count=len(answer.notifications),
                     replayed=answer.replayed)
        if _wants_xml(request.headers.get("accept", "")):
            return Response(notify_xml(answer), media_type=f"{XML}; charset=utf-8")
        return JSONResponse(pull_json(answer))  # the document's PullOut, without validating it item by item

    return api


def _wants_xml(accept: str) -> bool:
    """XML when the client asks for it rather than JSON (`application/xml` or `text/xml`, ranked above JSON)."""
    best: tuple[float, str] | None = None
    for part in accept.split(","):
        kind, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                try:
                    quality = float(parameter[2:])
                except ValueError:
                    quality = 0.0
        if kind in {"application/xml", "text/xml", "application/json"} and (best is None or quality > best[0]):
            best = (quality, kind)
    return best is not None and best[1] != "application/json" and best[0] > 0


def _denied(error: sa.exc.DBAPIError) -> str | None:
    """What a write refused by the server means for this service, or None for any other database error."""
    code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    text = mask_cpr(str(error.orig))
    if code in {1290, 1792, 1836} or "readonly database" in text:
        return ("the service database refuses writes (read-only: a replica?); the notification service needs the "
                "primary: set service_url to it")
    if code in {1142, 1143}:
        return "the services' account may not write the notification tables; grant it (README, \"Access\")"
    if code == 1146 or "no such table" in text:
        return "the service database has no notification tables (not the migrated production database)"
    return None
