"""Small rules of the façades: which account they read with, and which form of the feed a client gets."""

from pathlib import Path

import pytest

from importer.config import load_settings
from importer.http.replication import wants_json


def test_the_facades_read_with_their_own_account_when_one_is_configured_else_production(tmp_path: Path) -> None:
    production = {"STAMDATA_PRODUCTION_URL": "mysql+pymysql://importer@db/stamdata"}
    assert load_settings(None, production).facade_database_url == "mysql+pymysql://importer@db/stamdata"
    own = {**production, "STAMDATA_FACADE_URL": "mysql+pymysql://facade@db/stamdata"}
    assert load_settings(None, own).facade_database_url == "mysql+pymysql://facade@db/stamdata"
    config = tmp_path / "importer.toml"
    config.write_text('facade_url = "mysql+pymysql://reader@db/stamdata"\n', encoding="utf-8")
    assert load_settings(config, production).facade_database_url == "mysql+pymysql://reader@db/stamdata"


@pytest.mark.parametrize(("accept", "json"), [
    ("", False),
    ("*/*", False),
    ("application/atom+xml", False),
    ("application/json", True),
    ("application/json, application/atom+xml", True),  # equal preference: the first listed
    ("application/atom+xml, application/json", False),
    ("application/atom+xml;q=0.5, application/json", True),
    ("application/json;q=0.2, */*;q=0.1", True),
    ("text/html", False),
    ("application/json;q=nonsense", False),
])
def test_atom_unless_the_client_prefers_json(accept: str, json: bool) -> None:
    assert wants_json(accept) is json
