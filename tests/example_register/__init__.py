"""A register that exists only in the test suite, built by following `docs/ADDING_A_REGISTER.md` literally.

It is what `registers/example/` would be: codes with a name and a group, one `<yyyyMMdd>Example.csv` a day. It has
no entry point, so `discover()` never finds it and production never runs it; `tests/kit.py` adds it to the
registers the conformance suite checks, and applies its revision (`versions/`), which stands outside the real
chain in `migrations/versions/`, to the test databases.
"""

from tests.example_register.register import ExampleRegister

REGISTER = ExampleRegister()

__all__ = ["REGISTER"]
