"""Implausible release dates and numbers, hostile JSON and stray files: refused with their rule."""

from datetime import datetime
from pathlib import Path

import pytest

from importer.errors import DataError
from importer.load.plugin import ParsedDataset, PreviousImport, SequenceContext
from registers.doseringsforslag import REGISTER
from registers.doseringsforslag.parser import SPEC_BY_FILE
from registers.doseringsforslag.records import FileProblems, load_records

NOW = datetime(2026, 11, 22, 12, 0, 0)


def release(number: int, day: datetime = datetime(2026, 11, 1)) -> ParsedDataset:
    return ParsedDataset(name=f"release-{number}", version=str(number), valid_from=day, frames={}, files={})


def after(number: int) -> PreviousImport:
    return PreviousImport(version=str(number), valid_from=datetime(2016, 1, 1), dataset=f"release-{number}")


def test_the_published_series_passes_the_release_gap_guard() -> None:
    context = SequenceContext(now=NOW, settings={"max_release_gap": 25})
    for previous, number in ((11, 14), (14, 27), (27, 29)):
        assert REGISTER.check_sequence(after(previous), release(number), context).notes == []


@pytest.mark.parametrize("number", [29 + 26, 2**63 - 1])
def test_a_release_number_far_beyond_the_newest_is_refused_unless_forced(number: int) -> None:
    with pytest.raises(DataError, match="release-gap"):
        REGISTER.check_sequence(after(29), release(number), SequenceContext(now=NOW, settings={"max_release_gap": 25}))
    forced = REGISTER.check_sequence(after(29), release(number),
                                     SequenceContext(now=NOW, settings={"max_release_gap": 25}, force=True))
    assert forced.notes and forced.notes[0].startswith("release-gap guard overridden by --force")


def test_the_release_date_is_checked_against_the_clock() -> None:
    settings = {"max_future_days": 31.0}
    assert REGISTER.check_sequence(None, release(1, datetime(2026, 12, 23)), SequenceContext(NOW, settings)).notes == []
    with pytest.raises(DataError, match="future-date"):
        REGISTER.check_sequence(None, release(1, datetime(2026, 12, 24)), SequenceContext(NOW, settings))
    with pytest.raises(DataError, match="open-end-date"):
        REGISTER.check_sequence(None, release(1, datetime(2999, 12, 31)), SequenceContext(NOW, settings, force=True))


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ('{"drugs": [{"drugId":\n' + "1" * 5000 + "}]}", "number-too-long", 2),
        ('{"drugs":\n\n' + "[" * 100_000 + "]" * 100_000 + "}", "nesting-too-deep", 3),
    ],
)
def test_hostile_json_is_refused_with_file_line_and_rule(text: str, rule: str, line: int) -> None:
    with pytest.raises(FileProblems) as refused:
        load_records(SPEC_BY_FILE["Drugs.json"], text)
    (problem,) = refused.value.problems
    assert (problem.rule, problem.file, problem.line) == (rule, "Drugs.json", line)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"drugs": [{"drugId": 1, "drugName": "' + "[{" * 50 + '\\"[["}]}'
    assert load_records(SPEC_BY_FILE["Drugs.json"], text)[0]["drugId"] == 1


def test_a_stray_file_is_not_recognised_and_its_refusal_names_both_formats(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("remember release 11\n")
    assert REGISTER.recognise(notes) is None
    with pytest.raises(DataError) as refused:
        REGISTER.parse(notes, {"zip_max_mb": 512.0})
    message = str(refused.value)
    assert message.startswith("notes.txt: dataset-kind:")
    assert "DosageVersion.json" in message and "doseringsforslag.csv" in message and "v1" in message and "v2" in message
    assert "doseringsforslag.csv" in REGISTER.dataset_description
