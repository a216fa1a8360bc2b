"""Give memory that the process has freed back to the operating system.

Parsing a million-row dump allocates and frees a great deal in slices; glibc keeps what was freed in the
heap for reuse rather than returning it, so the resident size stays near the parse's peak while the
delta is computed on top of it. `malloc_trim` returns those free pages. Elsewhere than glibc it is a no-op.
"""

import ctypes
import ctypes.util
from functools import cache


@cache
def _trim() -> "ctypes._NamedFuncPointer | None":
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    trim = _trim()
    if trim is not None:
        trim(0)
