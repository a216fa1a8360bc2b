"""The doseringsforslag register plugin: complete releases, sequenced by release number, kept as snapshots."""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from importer.errors import DataError
from importer.load.plugin import (
    Facades,
    FeedView,
    NotificationIds,
    ParsedDataset,
    PreviousImport,
    Register,
    SequenceContext,
    Sequenced,
    TestDataSpec,
    check_dataset_date,
    within_dataset,
)
from registers.doseringsforslag import parser, source, v2
from registers.doseringsforslag import tables as schema
from registers.doseringsforslag.dosage import fmk

if TYPE_CHECKING:
    from importer.http.audit import Auditor
    from importer.http.database import FacadeDatabase

FEED_PREFIX = "doseringsforslag"


def _view(datatype: str, table: str, columns: list[str]) -> FeedView:
    fields = {column: column for column in columns}
    fields.update({"validFrom": "ValidFrom", "validTo": "ValidTo"})
    return FeedView(path=f"{FEED_PREFIX}/{datatype}/v1", table=table, fields=fields)


class DoseringsforslagRegister(Register):
    name = "doseringsforslag"
    status_table_name = schema.import_status.name
    metadata = schema.metadata
    tables = schema.ALL
    settings_defaults: Mapping[str, Any] = {
        # A release comes every 6-8 weeks; three months without one means the feed has stopped.
        "max_age_days": 95.0,
        # Refuse a release dated more than this many days after the run's clock, unless forced: a release may be
        # delivered some weeks before the date it takes effect; a year typo is refused.
        "max_future_days": 31.0,
        # Refuse a release number more than this far above the newest imported one, unless forced: real history
        # skips releases (11, 14, 27, 29: gaps of up to 13; 25 is about three years of releases), but a typo such
        # as 9223372036854775807 would close the register's rows and leave no number for any real release.
        "max_release_gap": 25,
        # Uncompressed bytes a ZIP may expand to (all five files together): a guard against ZIP bombs.
        "zip_max_mb": 512.0,
        # FMK interface versions written into each structure's xml (format v2 derives it); oldest first.
        "fmk_versions": list(fmk.DEFAULT_VERSIONS),
        # Format v2: write the translations' fixed wording double-encoded, byte for byte as the published
        # releases have it (`DoseringsforlÃ¸bet`); false writes correct Danish letters instead.
        # The published releases 27 and 29 carry double-encoded Danish wording (`hÃ¸jst`), a defect of the old
        # generator corrected in later releases: correct letters unless this legacy mode is asked for.
        "double_encoded_wording": False,
    }
    testdata = TestDataSpec()  # no persons: a whole release is dumped and restored (a test environment's start)
    # A change notification names the drug; its relations to dosage structures change with its release (every
    # key holds the release number), so notifying them too would only repeat the drug's notifications.
    notification_ids = (NotificationIds(table="DosageDrug", datatype="drug",
                                        ids={"drugId": "http://nsi.dk/advis/v10/DrugId"}),)
    feed_views = (
        _view("version", "DosageVersion", ["releaseNumber", "releaseDate", "lmsDate", "daDate"]),
        _view("dosageunit", "DosageUnit", ["releaseNumber", "code", "textSingular", "textPlural"]),
        _view("drug", "DosageDrug", ["releaseNumber", "drugId", "drugName", "dosageUnitCode"]),
        _view("dosagestructure", "DosageStructure", [
            "releaseNumber", "code", "type", "simpleString", "supplementaryText", "xml", "shortTranslation",
            "longTranslation",
        ]),
        _view("drugdosagestructurerelation", "DrugDosageStructureRelation",
              ["id", "releaseNumber", "drugId", "dosageStructureCode"]),
    )

    dataset_description = source.DATASET_DESCRIPTION

    def recognise(self, path: Path) -> str | None:
        """v1 when the five JSON files are there, v2 when a delimited file with the v2 header is."""
        if source.has_all_files(path):
            return parser.FORMAT
        return v2.FORMAT if v2.has_data_file(path) else None

    def setting_problems(self, settings: Mapping[str, Any]) -> dict[str, str]:
        try:
            fmk.check_versions(list(settings["fmk_versions"]))
        except ValueError as error:
            return {"fmk_versions": str(error)}
        return {}

    def could_be_dataset(self, path: Path) -> bool:
        return path.is_dir() or path.suffix.lower() == ".zip"

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        try:
            return self._parse(path, settings)
        except DataError as error:
            raise within_dataset(error, path.name) from None

    def _parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        zip_max_bytes = int(float(settings["zip_max_mb"]) * (1 << 20))
        if self.recognise(path) == v2.FORMAT:
            versions = fmk.check_versions(list(settings["fmk_versions"]))  # valid: checked at start (setting_problems)
            return v2.parse_dataset(path, zip_max_bytes, versions, bool(settings.get("double_encoded_wording", False)))
        return parser.parse_dataset(path, zip_max_bytes=zip_max_bytes)

    def check_sequence(
        self, previous: PreviousImport | None, parsed: ParsedDataset, context: SequenceContext
    ) -> Sequenced:
        """Strictly increasing release numbers; validity never runs backwards even when release dates do.

        A gap is allowed (real history skips releases) but said out loud, and refused beyond `max_release_gap`
        unless forced. A release dated before the one it replaces starts at the earlier release's validity, so
        closing the old rows never inverts an interval. The release date must be plausible (`check_dataset_date`).
        """
        notes = check_dataset_date(parsed.valid_from, context, what="release date", file=parsed.name,
                                   default_future_days=float(self.settings_defaults["max_future_days"]))
        if previous is None:
            return Sequenced(valid_from=parsed.valid_from, notes=notes)
        number, newest = int(parsed.version), int(previous.version)
        if number <= newest:
            rule = "same-release" if number == newest else "older-release"
            raise DataError.single(
                rule,
                f"release {number} is not newer than release {newest} already imported ({previous.dataset})",
                file=parsed.name,
            )
        warnings = []
        gap = number - newest
        limit = int(context.settings.get("max_release_gap", self.settings_defaults["max_release_gap"]))
        if gap > limit:
            if not context.force:
                raise DataError.single(
                    "release-gap",
                    f"release {number} is {gap} releases after release {newest} already imported "
                    f"({previous.dataset}), more than max_release_gap {limit}; a mistyped release number would "
                    "block every real release after it. Import it with --force if the number is right",
                    file=parsed.name,
                )
            notes.append(f"release-gap guard overridden by --force: {newest} -> {number} (max_release_gap {limit})")
        if gap > 1:
            warnings.append(f"release gap: {newest} -> {number}, release(s) {newest + 1}"
                            f"{'' if number == newest + 2 else f'..{number - 1}'} never imported")
        valid_from = parsed.valid_from
        if valid_from < previous.valid_from:
            warnings.append(
                f"release {number} is dated {valid_from:%Y-%m-%d}, before release {newest}'s validity "
                f"{previous.valid_from:%Y-%m-%d %H:%M:%S}; its validity starts at the latter"
            )
            valid_from = previous.valid_from
        return Sequenced(valid_from=valid_from, warnings=warnings, notes=notes)

    def facade_routers(self, database: "FacadeDatabase", audit: "Auditor") -> Facades:
        from registers.doseringsforslag import facade  # the web stack only where something serves

        return Facades(http=facade.router(database))
