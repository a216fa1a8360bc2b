"""CPR numbers are personal data: they are masked wherever text leaves the process (logs, messages)."""

import re
from typing import Any

# Ten digits not part of a longer number, with or without the conventional dash after the date part.
# Long hexadecimal runs (sha256 digests of input files) are matched first and passed through untouched,
# so a digest that happens to hold ten digits in a row is not mangled.
_CPR_OR_DIGEST = re.compile(r"[0-9a-fA-F]{32,}|(?<!\d)(\d{6})-?(\d{4})(?!\d)")


def _replace(match: re.Match[str]) -> str:
    return match.group(0) if match.group(1) is None else f"{match.group(1)}-****"


def mask_cpr(text: str) -> str:
    """Keep the date part (useful when reading a log), hide the serial that makes it identifying."""
    return _CPR_OR_DIGEST.sub(_replace, text)


def mask_everything(value: Any) -> Any:
    """Mask strings inside arbitrarily nested log values."""
    if isinstance(value, str):
        return mask_cpr(value)
    if isinstance(value, dict):
        return {key: mask_everything(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_everything(item) for item in value)
    return value
