"""The authorisation register of health professionals (Autorisationsregisteret), FORMATS.md §1."""

from registers.autorisation.register import AutorisationRegister

REGISTER = AutorisationRegister()

__all__ = ["REGISTER"]
