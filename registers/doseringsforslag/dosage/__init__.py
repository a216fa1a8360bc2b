"""Dose proposals as data: parse the v2 expressions, translate them to Danish, write FMK XML.

A library of pure functions (no database, no pandas) so other tools can use it; the register's v2 reader is
one client. `model` is the typed model, `expression` parses and prints the delivery's expressions, `danish`
translates, `fmk` writes the `<DosageProposals>` XML, `derive` turns delivery rows into the five tables.
"""

from registers.doseringsforslag.dosage.model import Day, Dose, DoseKind, ExpressionError, Period, Proposal, Unit

__all__ = ["Day", "Dose", "DoseKind", "ExpressionError", "Period", "Proposal", "Unit"]
