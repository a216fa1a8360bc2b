"""The dose-proposal library on its own: parsing per dose type, Danish translations, FMK XML, round trips."""

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registers.doseringsforslag.dosage import DoseKind, ExpressionError, Unit, danish, fmk
from registers.doseringsforslag.dosage.derive import Row, simple_string
from registers.doseringsforslag.dosage.expression import format_expression, parse
from registers.doseringsforslag.dosage.model import Proposal

TABLET = Unit("tablet", "tabletter")


def proposal(kind: str, iteration: str, expression: str, text: str | None = None, unit: Unit = TABLET) -> Proposal:
    return parse(kind, iteration, expression, unit, text)


def test_times_of_day_drop_zero_doses_and_merge_three_and_four_values() -> None:
    three, four = proposal("M+M+A+N", "1", "1+0+1"), proposal("M+M+A+N", "1", "1+0+1+0")
    assert three.key() == four.key()
    assert [(d.time, d.quantity) for d in three.periods[0].days[0].doses] == [
        ("morning", Decimal(1)), ("evening", Decimal(1))]
    assert danish.short_translation(three) == "1 tablet morgen og aften"
    assert danish.long_translation(three) == (
        "DoseringsforlÃ¸bet starter mandag den 3. juni 2013, gentages hver dag, og ophÃ¸rer mandag den 1. juni 2015:"
        "\n   DoseringsforlÃ¸b:\n   1 tablet morgen + 1 tablet aften"
    )


def test_daily_doses_with_supplementary_text() -> None:
    eyes = proposal("N daglig", "1", "2;2;2", ", 1 i hvert øje", Unit("dråbe", "dråber"))
    assert danish.short_translation(eyes) == "2 dråber 3 gange daglig, 1 i hvert øje"
    assert danish.short_translation(proposal("N daglig", "1", "0.5")) == "1/2 tablet daglig"
    assert danish.short_translation(proposal("N daglig", "1", "1.5")) == "1 1/2 tabletter 1 gang daglig"


def test_day_forms_weekly_and_not_repeated() -> None:
    weekly = proposal("N daglig", "7", "dag 1: 2 dag 4: 2", unit=Unit("brusetablet", "brusetabletter"))
    assert [day.number for day in weekly.periods[0].days] == [1, 4]
    assert danish.short_translation(weekly) == "2 brusetabletter mandag og torsdag hver uge"
    assert "BemÃ¦rk at doseringen har et komplekst forlÃ¸b" in (danish.long_translation(weekly) or "")
    course = proposal("N daglig", "0", "Dag 1: 1;1 Dag 2: 1;1 Dag 3: 1;1")
    assert danish.short_translation(course) == "1 tablet 2 gange daglig i 3 dage"
    assert (danish.long_translation(course) or "").endswith("   Onsdag den 5. juni 2013: 1 tablet 2 gange")


def test_day_form_fragments_without_colon_are_skipped_like_the_platform() -> None:
    messy = proposal("N daglig", "0", "dag 1: 1;1 dag 2: 1;1 dag 3: 1;1 dag 4; 1;1 dag 5: 1;1 dag 6: 1;1 dag 1;1")
    assert [day.number for day in messy.periods[0].days] == [1, 2, 3, 5, 6]
    assert danish.short_translation(messy) == "1 tablet 2 gange daglig dag 1, 2, 3, 5 og 6"


def test_as_needed_not_iterated_is_any_day_and_iterated_has_a_daily_maximum() -> None:
    any_day = proposal("PN", "0", "0.5", ", 1 time før virkning ønskes")
    assert any_day.periods[0].days[0].number == 0
    assert danish.short_translation(any_day) == "1/2 tablet efter behov, 1 time før virkning ønskes"
    assert "<m12:AnyDay>" in fmk.dosage_proposals(any_day, ["1.4.0"])
    limited = proposal("PN", "1", "2;2;2;2")
    assert danish.short_translation(limited) == "2 tabletter efter behov, hÃ¸jst 4 gange daglig"


def test_a_short_text_over_70_characters_falls_back_or_is_absent() -> None:
    text = ", 1-2 dage før ankomst til 7 dage efter afrejse"
    assert danish.short_translation(proposal("N daglig", "1", "1", text)) == f"1 tablet daglig{text}"
    assert danish.short_translation(proposal("N daglig", "1", "2", text)) is None


def test_free_text() -> None:
    free = proposal("FT", "0", "Dosering efter skriftlig anvisning", unit=Unit("mg", "mg"))
    assert free.key() == proposal("FT", "0", "Dosering efter skriftlig anvisning").key()
    assert danish.short_translation(free) == "Dosering efter skriftlig anvisning"
    assert "<m12:FreeText>Dosering efter skriftlig anvisning</m12:FreeText>" in fmk.dosage_proposals(free, ["1.4.0"])


def test_multi_period_braces_in_every_column() -> None:
    two = proposal("{N daglig}{N daglig}", "{0}{1}", "{dag 1: 1;1}{1}")
    assert two.type == "{N daglig}{N daglig}"
    assert [(p.iteration, len(p.days)) for p in two.periods] == [(0, 1), (1, 1)]
    assert danish.short_translation(two) is None
    document = fmk.dosage_proposals(two, fmk.VERSIONS)
    assert re.findall(r"<Version>(.*?)</Version>", document) == ["1.4.2", "1.4.4", "1.4.6"]
    assert document.count("<m16:Structure>") == 2


@pytest.mark.parametrize(("kind", "iteration", "expression", "reason"), [
    ("M+M+A+N", "1", "1+0", "3 or 4"),
    ("N daglig", "1", "en", "not a quantity"),
    ("N daglig", "x", "1", "iteration"),
    ("Kompleks", "1", "1", "unknown type"),
    ("{N daglig}{PN}", "{0}{1}", "{1}", "do not match"),
    ("N daglig", "0", "dag en", "no 'dag N"),
])
def test_unreadable_expressions_say_why(kind: str, iteration: str, expression: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        proposal(kind, iteration, expression)


def test_146_is_shaped_like_the_platform_example() -> None:
    """The seed's example: 2 pust morning and evening, daily."""
    document = fmk.dosage_proposals(proposal("M+M+A+N", "1", "2+0+2+0", unit=Unit("pust", "pust")),
                                    fmk.DEFAULT_VERSIONS)
    root = ET.fromstring(document)
    ns = {"p": "http://www.dkma.dk/medicinecard/xml.schema/2013/11/01",
          "m16": "http://www.dkma.dk/medicinecard/xml.schema/2015/06/01"}
    versions = [v.text for v in root.findall("p:Dosage/p:Version", ns)]
    assert versions == ["1.4.0", "1.4.2", "1.4.4", "1.4.6"]
    dosage = root.findall("p:Dosage", ns)[-1].find("m16:Dosage", ns)
    assert dosage is not None
    assert [child.tag.split("}")[1] for child in dosage] == ["UnitTexts", "StructuresFixed"]
    structure = dosage.find("m16:StructuresFixed/m16:Structure", ns)
    assert structure is not None
    assert [child.tag.split("}")[1] for child in structure] == [
        "IterationInterval", "StartDate", "EndDate", "Day"]
    doses = [(d.findtext("m16:Time", namespaces=ns), d.findtext("m16:Quantity", namespaces=ns))
             for d in structure.findall("m16:Day/m16:Dose", ns)]
    assert doses == [("morning", "2"), ("evening", "2")]


_quantity = st.sampled_from(["0.25", "0.5", "1", "1.5", "2", "2.5", "10", "12.5"])


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, str, str]:
    kind = draw(st.sampled_from(["M+M+A+N", "N daglig", "PN"]))
    iteration = draw(st.sampled_from(["0", "1", "7", "28"]))

    def doses() -> str:
        if kind == "M+M+A+N":
            values = draw(st.lists(st.sampled_from(["0", "1", "0.5", "2"]), min_size=4, max_size=4))
            return "+".join(values) if any(v != "0" for v in values) else "1+" + "+".join(values[1:])
        return ";".join(draw(st.lists(_quantity, min_size=1, max_size=5)))

    if draw(st.booleans()):
        numbers = sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=6)))
        return kind, iteration, " ".join(f"dag {n}: {doses()}" for n in numbers)
    return kind, iteration, doses()


@settings(max_examples=150, deadline=None)
@given(expressions(), st.sampled_from([None, "ved anfald", ", 1 i hvert øje"]))
def test_round_trip_parse_model_text_parse(columns: tuple[str, str, str], text: str | None) -> None:
    first = proposal(*columns, text=text)
    again = proposal(*format_expression(first), text=text)
    assert again.key() == first.key()
    assert danish.long_translation(again) == danish.long_translation(first)
    kind, iteration, expression = columns
    row = Row(2, "28100010554", "Marzine", "tablet", "tabletter", iteration, kind, expression, text or "")
    simple = simple_string(row, first)
    if simple is not None:  # simpleString is a mapning text too
        assert proposal(first.type, "1", simple, text=text).key() == first.key()
    ET.fromstring(fmk.dosage_proposals(first, fmk.VERSIONS))  # always well-formed


def test_the_kind_enum_is_the_delivery_text() -> None:
    assert [kind.value for kind in DoseKind] == ["M+M+A+N", "N daglig", "PN", "FT"]
