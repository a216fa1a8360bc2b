"""CPR numbers are personal data: they are masked wherever text leaves the process (logs, messages).

Two maskers. `mask_cpr` is for ordinary text (log messages, errors): it masks a CPR number standing on its own,
plain or with a dash, also when its digits are percent-encoded (a URL path quoted in a message), and leaves
longer numbers (drug numbers, offsets) and digests alone. `mask_request_target` is for what a client sent (the
path and query of a request): anything may be in there, so it decodes the text as a server would, as often as
it takes, and then masks every run of ten or more digits, wherever it stands.
"""

import re
from typing import Any
from urllib.parse import unquote_plus

# A digit as it may be written in a URL: itself, percent-encoded (`%32`), or encoded again (`%2532`, …).
_DIGIT = r"(?:\d|%(?:25)*3\d)"
# The dash between the date part and the serial, also percent-encoded.
_DASH = r"(?:-|%(?:25)*2[dD])"
# A digest as this program writes them: a whole token of hexadecimal of a digest's length (md5, sha1, sha256
# cut to 48 for lock names, sha256, sha384, sha512), with at least one letter, passed through untouched (about
# one in five holds ten digits in a row somewhere). Unless it starts or ends with ten digits: that is what a
# CPR number glued to a hexadecimal run looks like ("2212774627abcdef…"), and a digest rarely (~2 %) does.
_DIGEST = (r"(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])(?![0-9]{10})"
           r"(?:[0-9a-fA-F]{128}|[0-9a-fA-F]{96}|[0-9a-fA-F]{64}|[0-9a-fA-F]{48}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})"
           r"(?<![0-9]{10})(?![0-9A-Za-z])")
# Ten digits not part of a longer number, with or without the conventional dash after the date part.
_CPR_OR_DIGEST = re.compile(rf"{_DIGEST}|(?<!\d)((?:{_DIGIT}){{6}}){_DASH}?(?:{_DIGIT}){{4}}(?!{_DIGIT})")

# In a request target, after decoding: any run of ten or more digits, with a dash (any Unicode dash) or a space
# (a `+` in a query) after the sixth, and digits still encoded beyond the decoding rounds.
_TARGET_DASH = rf"(?:[-\s\u2010-\u2015\u2212\ufe63\uff0d]|{_DASH}|%(?:25)*20|\+)"
_DIGIT_RUN = re.compile(rf"((?:{_DIGIT}){{6}}){_TARGET_DASH}?(?:{_DIGIT}){{4,}}")
_DECODING_ROUNDS = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _digits(encoded: str) -> str:
    """The digits of a matched date part, decoded (`%32` -> `2`): each digit token ends with its digit."""
    return "".join(token[-1] for token in re.findall(_DIGIT, encoded))


def _replace(match: re.Match[str]) -> str:
    return match.group(0) if match.group(1) is None else f"{_digits(match.group(1))}-****"


def mask_cpr(text: str) -> str:
    """Keep the date part (useful when reading a log), hide the serial that makes it identifying."""
    return _CPR_OR_DIGEST.sub(_replace, text)


def mask_request_target(text: str) -> str:
    """A request's path and query as a log line may show it: decoded and with every CPR-like number masked.

    Percent-encoding (and `+` for a space) is undone repeatedly until the text no longer changes, so a double
    or triple encoded number is seen as the digits it stands for; at every step, every run of ten or more digits
    is cut to its first six (the date part of a CPR number) and `-****`, wherever it stands: inside a longer
    number, glued to letters or to a hexadecimal run, with a dash or a space after the sixth digit. Nobody needs
    those digits to read an access log, and a CPR number can hide in any of those forms. Control characters the
    decoding produced are written back percent-encoded, so a request cannot forge log lines.
    """
    masked = _mask_digit_runs(text)
    for _ in range(_DECODING_ROUNDS):
        # Masked before each round too: decoding can take digits apart ("%2212774627": `%22` is a quote).
        step = _mask_digit_runs(unquote_plus(masked, errors="replace"))
        if step == masked:
            break
        masked = step
    return _CONTROL.sub(lambda match: f"%{ord(match.group(0)):02X}", masked)


def _mask_digit_runs(text: str) -> str:
    return _DIGIT_RUN.sub(lambda match: f"{_digits(match.group(1))}-****", text)


def mask_everything(value: Any) -> Any:
    """Mask strings inside arbitrarily nested log values."""
    if isinstance(value, str):
        return mask_cpr(value)
    if isinstance(value, dict):
        return {key: mask_everything(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_everything(item) for item in value)
    return value
