"""The register's declarations: what the engine and the façades build on."""

from importer.load.plugin import Register
from registers.autorisation import REGISTER as AUTORISATION
from registers.doseringsforslag import REGISTER


def test_feed_views_name_existing_columns_under_the_documented_paths() -> None:
    paths = {view.path for view in REGISTER.feed_views}
    assert paths == {f"doseringsforslag/{datatype}/v1" for datatype in
                     ("version", "dosageunit", "drug", "dosagestructure", "drugdosagestructurerelation")}
    for view in REGISTER.feed_views:
        table = REGISTER.metadata.tables[view.table]
        assert set(view.fields.values()) <= set(table.columns.keys()), view.path
        assert not any(column.endswith("PID") for column in view.fields.values()), "the PID is never exposed"


def test_tables_status_table_and_settings_are_the_documented_ones() -> None:
    assert [spec.name for spec in REGISTER.tables] == [
        "DosageVersion", "DosageUnit", "DosageDrug", "DosageStructure", "DrugDosageStructureRelation"]
    assert all("releaseNumber" in spec.key for spec in REGISTER.tables), "a release is a snapshot"
    for spec in REGISTER.tables:
        indexes = {tuple(column.name for column in index.columns) for index in spec.table.indexes}
        assert (f"{spec.name}PID", "ModifiedDate") in indexes
        assert any(index[1:] == ("ValidTo", "ValidFrom") for index in indexes)
    assert REGISTER.status_table_name == "doseringimporterImportStatus"
    assert REGISTER.settings_defaults["max_age_days"] == 95.0


def test_the_status_table_has_the_same_columns_as_every_other_registers() -> None:
    def shape(register: Register) -> list[tuple[str, str, bool]]:
        table = register.metadata.tables[register.status_table_name]
        return [(c.name, repr(c.type), bool(c.nullable)) for c in table.columns]

    assert shape(REGISTER) == shape(AUTORISATION)
