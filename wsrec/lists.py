"""Comma lists as users write them: ``--symbols AAPL,MSFT -s TSLA``, ``symbols="a,b"``,
``--param accounts=a|b``.

The one splitter behind the CLI's list options, ``Filters.make`` and the venues' list
parameters.
"""

from __future__ import annotations

import re

from wsrec.errors import UsageError

__all__ = ["split_list", "is_text"]


def split_list(values, what: str = "value", *, seps: str = ",",
               param: str | None = None) -> list[str]:
    """``'a,b'`` or ``['a, b', 'c', 'a']`` -> ``['a', 'b', 'c']``: the items of one comma
    list or of several, stripped, blanks and repeats dropped, in the order given. None or
    an empty string -> ``[]``. ``seps``: the characters that separate items (venue
    parameters also take ``'|'``).

    An item that is not valid text (a command-line argument that was not UTF-8 arrives
    with surrogate escapes) is a UsageError naming ``what`` (and ``param``, the argument):
    no stored value can equal it.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    pattern = "[" + re.escape(seps) + "]"
    out: dict[str, None] = {}
    for item in values:
        for v in re.split(pattern, str(item)):
            v = v.strip()
            if v:
                out.setdefault(v)
    for v in out:
        if not is_text(v):
            shown = repr(v.encode("utf-8", "surrogateescape") if _escaped(v) else v)
            raise UsageError(f"{what} {shown} is not valid UTF-8 text", param=param)
    return list(out)


def is_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (no lone surrogates from undecodable bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True
