"""The dosage proposals register (Doseringsforslag), format v1: five JSON files, FORMATS.md §2."""

from registers.doseringsforslag.register import DoseringsforslagRegister

REGISTER = DoseringsforslagRegister()

__all__ = ["REGISTER"]
