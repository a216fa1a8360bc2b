"""Paging the feed across databases that lag differently (a primary and its replicas): a page is answered only by a
database that has reached the client's token.

Within one database the feed never skips nor repeats a row (importer/http/feed.py). Replicas apply the primary's
transactions whole and in commit order, and every import's ModifiedDate is later than any committed before it, so
a replica holds the primary's rows exactly up to some import. A page asked of a replica that has not yet applied the
import the client's token came from (read from a database further ahead) would be empty: still nothing skipped or
repeated, but it would tell the client "caught up" when it is not. So a database answers a page after token (t, p)
only when it has reached t: the view holds a row changed at or after t, or an importer's heartbeat here names an
import committed at or after t (the row is written after that commit: a token the view's data does not explain, one
typed by hand, say, is then answered as before, by an empty page). The beat's own time would not do: an import's
transaction time is taken before it commits, and beats go on meanwhile. Otherwise the façade tries its other
databases, and without one that has reached t answers 503 with Retry-After: the client asks again with the same
token. A database no importer ever beat into (no heartbeat row) cannot tell, and answers as one database always has.
"""

from collections.abc import Callable

import sqlalchemy as sa

from importer.http import feed as feeds
from importer.http.database import FacadeDatabase
from importer.load import heartbeat


def has_reached(connection: sa.Connection, view: feeds.Feed, after: feeds.Token) -> bool:
    """Whether this database holds everything the feed had up to `after`'s ModifiedDate."""
    if after.modified == 0:
        return True
    head = feeds.read_head(connection, view)
    if head is not None and head.modified >= after.modified:
        return True
    if heartbeat.newest(connection) is None:
        # No heartbeat at all: no importer of this version ever wrote here, so nothing tells a copy from the source.
        return True
    named = heartbeat.reached(connection)
    return named is not None and feeds.epoch_seconds(named) >= after.modified


def reaching(view: feeds.Feed, after: feeds.Token) -> Callable[[sa.Connection], bool]:
    return lambda connection: has_reached(connection, view, after)


def read_page(database: FacadeDatabase, view: feeds.Feed, after: feeds.Token,
              max_records: int | None) -> list[feeds.Entry]:
    """The page after `after`, from a database that has reached it; `Behind` (503) when none has yet."""
    with database.connect_reaching(reaching(view, after)) as connection:
        return feeds.read_page(connection, view, after, max_records)
