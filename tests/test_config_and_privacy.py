"""CPR masking and configuration precedence."""

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from importer.cli import app
from importer.config import check_registers, load_settings
from importer.errors import DataError, UsageError
from importer.load.plugin import discover
from importer.privacy import mask_cpr, mask_everything


def test_cpr_numbers_are_masked_with_or_without_dash() -> None:
    assert mask_cpr("cpr 0101801234 and 010180-1234;x") == "cpr 010180-**** and 010180-****;x"


def test_longer_numbers_and_digests_are_left_alone() -> None:
    digest = "d0b1c3c694c36e2babc307c604c780941234567890fc18621ef0cefa4a00fb00"
    text = f"drug 28100636975 run autorisation-1795346493780 sha {digest} offset 17953464930000000042"
    assert mask_cpr(text) == text


@given(st.from_regex(r"\A[0-9]{10}\Z"), st.sampled_from(["", " ", ";", "=", "\n", "'", "x"]))
def test_any_ten_digit_number_is_masked(cpr: str, separator: str) -> None:
    assert mask_cpr(f"x{separator}{cpr}{separator}y") == f"x{separator}{cpr[:6]}-****{separator}y"


def test_nested_log_values_are_masked() -> None:
    assert mask_everything({"a": ["0101801234", ("0202851234",)], "b": 5}) == {
        "a": ["010180-****", ("020285-****",)],
        "b": 5,
    }


def test_data_error_messages_are_masked() -> None:
    assert "0101801234" not in str(DataError.single("cpr", "bad value 0101801234", "f.csv", 3))


def test_environment_beats_file_beats_default(tmp_path: Path) -> None:
    config = tmp_path / "importer.toml"
    config.write_text('inbox = "/srv/inbox"\nlisten = "0.0.0.0:9000"\n[registers.autorisation]\nreduction_guard = 7\n')
    settings = load_settings(config, {"STAMDATA_LISTEN": "127.0.0.1:9999", "STAMDATA_AUTORISATION_MAX_AGE_DAYS": "3"})
    assert settings.inbox == Path("/srv/inbox")
    assert settings.listen == "127.0.0.1:9999"
    assert settings.production_url == "sqlite:///var/production.sqlite"
    register = settings.for_register("autorisation", {"reduction_guard": 100, "max_age_days": 2.0})
    assert register["reduction_guard"] == 7 and register["max_age_days"] == 3.0


def test_bad_configuration_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "importer.toml"
    config.write_text("productoin_url = 'typo'\n")
    with pytest.raises(UsageError, match="productoin_url"):
        load_settings(config, {})
    with pytest.raises(UsageError, match="STAMDATA_AUTORISATION_REDUCTION_GUARD"):
        load_settings(None, {"STAMDATA_AUTORISATION_REDUCTION_GUARD": "lots"}).for_register(
            "autorisation", {"reduction_guard": 100}
        )


BAD_CONFIGURATIONS = [
    # (file text, environment, what the message must name)
    ("", {"STAMDATA_LOG_LEVEL": "chatty"}, ["log_level", "$STAMDATA_LOG_LEVEL", "one of"]),
    ("", {"STAMDATA_LISTEN": "nonsense"}, ["listen", "$STAMDATA_LISTEN", "host:port"]),
    ("", {"STAMDATA_LISTEN": "127.0.0.1:99999"}, ["listen", "port from 1 to 65535"]),
    ('listen = ":8080"\n', {}, ["listen", "importer.toml", "host"]),
    ("listen = 8080\n", {}, ["listen", "importer.toml", "must be a string"]),
    ("[registers.autorisatoin]\nquiet_period_s = 3\n", {}, ["registers.autorisatoin", "no such register"]),
    ("[registers.autorisation]\nreduction_gaurd = 3\n", {}, ["reduction_gaurd", "importer.toml", "no such setting"]),
    ('[registers.autorisation]\nreduction_guard = "many"\n', {}, ["reduction_guard", "importer.toml", "number"]),
    ("[registers.autorisation]\nreduction_guard = -5\n", {}, ["reduction_guard", "must not be negative"]),
    ("", {"STAMDATA_AUTORISATION_REDUCTION_GUARD": "abc"}, ["STAMDATA_AUTORISATION_REDUCTION_GUARD", "whole number"]),
    ("", {"STAMDATA_RETRY_INITIAL_S": "0"}, ["retry_initial_s", "greater than 0"]),
    ('watch_mode = "inotify"\n', {}, ["watch_mode", "native, polling, off"]),
    ('production_url = "postgresql://db/x"\n', {}, ["production_url", "unsupported database"]),
    ("registers = 5\n", {}, ["registers", "tables"]),
    ("productoin_url = 'typo'\n", {}, ["productoin_url", "no such setting"]),
]


@pytest.mark.parametrize(("text", "environ", "named"), BAD_CONFIGURATIONS)
def test_the_whole_configuration_is_checked_at_start_exit_2_naming_key_source_and_rule(
    tmp_path: Path, text: str, environ: dict[str, str], named: list[str]
) -> None:
    config = tmp_path / "importer.toml"
    config.write_text(text)
    environment: dict[str, str | None] = {k: None for k in os.environ if k.startswith("STAMDATA_")}
    environment.update(environ)
    result = CliRunner().invoke(app, ["--config", str(config), "status"], env=environment, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for part in named:
        assert part in result.stderr, (part, result.stderr)


def test_a_misspelt_environment_variable_is_warned_about(tmp_path: Path) -> None:
    warnings = check_registers(load_settings(None, {"STAMDATA_AUTORISATOIN_QUIET_PERIOD_S": "3",
                                                    "STAMDATA_TEST_REQUIRE_MARIADB": "1"}), discover())
    assert warnings == ["environment variable STAMDATA_AUTORISATOIN_QUIET_PERIOD_S sets nothing (no such setting)"]


@pytest.mark.parametrize(("environ", "named"), [
    ({"STAMDATA_DOSERINGSFORSLAG_FMK_VERSIONS": "1.4.6,9.9.9"}, ["registers.doseringsforslag.fmk_versions",
                                                                "$STAMDATA_DOSERINGSFORSLAG_FMK_VERSIONS", "9.9.9"]),
    ({"STAMDATA_AUTORISATION_CHANGE_GUARD": "1.5"}, ["registers.autorisation.change_guard", "at most 1"]),
])
def test_a_registers_own_rules_for_its_settings_are_checked_at_start(environ: dict[str, str], named: list[str]) -> None:
    with pytest.raises(UsageError) as refused:
        check_registers(load_settings(None, environ), discover())
    for part in named:
        assert part in str(refused.value), (part, str(refused.value))
