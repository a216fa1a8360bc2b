"""The doseringsforslag register plugin: complete releases, sequenced by release number, kept as snapshots."""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from importer.errors import DataError, UsageError
from importer.plugin import FeedView, ParsedDataset, PreviousImport, Register, Sequenced
from registers.doseringsforslag import parser, source, v2
from registers.doseringsforslag import tables as schema
from registers.doseringsforslag.dosage import fmk

if TYPE_CHECKING:
    from fastapi import APIRouter

    from importer.facades import FacadeDatabase

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
        # Uncompressed bytes a ZIP may expand to (all five files together): a guard against ZIP bombs.
        "zip_max_mb": 512.0,
        # FMK interface versions written into each structure's xml (format v2 derives it); oldest first.
        "fmk_versions": list(fmk.DEFAULT_VERSIONS),
        # Format v2: write the translations' fixed wording double-encoded, byte for byte as the published
        # releases have it (`DoseringsforlÃ¸bet`); false writes correct Danish letters instead.
        "double_encoded_wording": True,
    }
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

    def recognise(self, path: Path) -> str | None:
        """v1 when the five JSON files are there, v2 when a delimited file with the v2 header is."""
        if source.has_all_files(path):
            return parser.FORMAT
        return v2.FORMAT if v2.has_data_file(path) else None

    def parse(self, path: Path, settings: Mapping[str, Any]) -> ParsedDataset:
        zip_max_bytes = int(float(settings["zip_max_mb"]) * (1 << 20))
        if self.recognise(path) == v2.FORMAT:
            versions = settings.get("fmk_versions", fmk.DEFAULT_VERSIONS)
            if isinstance(versions, str):
                versions = [item.strip() for item in versions.split(",") if item.strip()]
            try:
                checked = fmk.check_versions(list(versions))
            except ValueError as error:
                raise UsageError(f"doseringsforslag fmk_versions: {error}") from None
            return v2.parse_dataset(path, zip_max_bytes, checked, bool(settings.get("double_encoded_wording", True)))
        return parser.parse_dataset(path, zip_max_bytes=zip_max_bytes)

    def check_sequence(self, previous: PreviousImport | None, parsed: ParsedDataset) -> Sequenced:
        """Strictly increasing release numbers; validity never runs backwards even when release dates do.

        A gap is allowed (real history skips releases) but said out loud. A release dated before the one it
        replaces starts at the earlier release's validity, so closing the old rows never inverts an interval.
        """
        if previous is None:
            return Sequenced(valid_from=parsed.valid_from)
        number, newest = int(parsed.version), int(previous.version)
        if number <= newest:
            rule = "same-release" if number == newest else "older-release"
            raise DataError.single(
                rule,
                f"release {number} is not newer than release {newest} already imported ({previous.dataset})",
                file=parsed.name,
            )
        warnings = []
        if number > newest + 1:
            warnings.append(f"release gap: {newest} -> {number}, release(s) {newest + 1}"
                            f"{'' if number == newest + 2 else f'..{number - 1}'} never imported")
        valid_from = parsed.valid_from
        if valid_from < previous.valid_from:
            warnings.append(
                f"release {number} is dated {valid_from:%Y-%m-%d}, before release {newest}'s validity "
                f"{previous.valid_from:%Y-%m-%d %H:%M:%S}; its validity starts at the latter"
            )
            valid_from = previous.valid_from
        return Sequenced(valid_from=valid_from, warnings=warnings)

    def facade_router(self, database: "FacadeDatabase") -> "APIRouter":
        from registers.doseringsforslag import facade  # the web stack only where something serves

        return facade.router(database)
