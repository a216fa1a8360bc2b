"""CPR numbers are personal data: they are masked wherever text leaves the process (logs, messages)."""

import re
from typing import Any

# Ten digits standing alone (not part of a longer number or of a hex digest such as a sha256), with or
# without the conventional dash after the date part.
_CPR = re.compile(r"(?<![0-9A-Za-z])(\d{6})-?(\d{4})(?![0-9A-Za-z])")


def mask_cpr(text: str) -> str:
    """Keep the date part (useful when reading a log), hide the serial that makes it identifying."""
    return _CPR.sub(r"\1-****", text)


def mask_everything(value: Any) -> Any:
    """Mask strings inside arbitrarily nested log values."""
    if isinstance(value, str):
        return mask_cpr(value)
    if isinstance(value, dict):
        return {key: mask_everything(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_everything(item) for item in value)
    return value
