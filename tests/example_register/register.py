"""The example register plugin: daily full dumps of codes, sequenced by file date."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from importer.errors import DataError
from importer.load.plugin import (
    FeedView,
    ParsedDataset,
    PreviousImport,
    Register,
    SequenceContext,
    Sequenced,
    sequence_by_date,
)
from tests.example_register import parser
from tests.example_register import tables as schema


class ExampleRegister(Register):
    name = "example"
    status_table_name = schema.import_status.name
    metadata = schema.metadata
    tables = (schema.EXAMPLE_CODE,)
    settings_defaults: Mapping[str, Any] = {
        "max_future_days": 7.0,  # refuse a dump dated further ahead than this, unless forced
        "max_age_days": 2.0,  # /status calls the register overdue after this long without a success
    }
    feed_views = (
        FeedView(
            path="example/code/v1",
            table="ExampleCode",
            fields={"code": "code", "name": "name", "group": "group", "validFrom": "ValidFrom", "validTo": "ValidTo"},
        ),
    )
    dataset_description = "an example dataset is one file named <yyyyMMdd>Example.csv (e.g. 20261122Example.csv)"

    def could_be_dataset(self, path: Path) -> bool:
        return path.suffix.lower() == ".csv"

    def recognise(self, path: Path) -> str | None:
        try:
            parser.file_date(path)
        except DataError:
            return None
        return "csv" if path.is_file() and parser.is_complete(path) else None

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        return parser.parse_file(path)

    def check_sequence(
        self, previous: PreviousImport | None, parsed: ParsedDataset, context: SequenceContext
    ) -> Sequenced:
        return sequence_by_date(previous, parsed, context,
                                default_future_days=float(self.settings_defaults["max_future_days"]))
