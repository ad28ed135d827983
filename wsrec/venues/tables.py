"""The normalized tables by name, and which a venue yields: no pyarrow, for ``wsrec
venues`` (the tables themselves are in ``normalize``)."""

from __future__ import annotations

TABLES = ("trades", "quotes", "book_changes", "book_snapshots", "bars", "blocks", "actions")


def tables(venue) -> dict[str, tuple[str, ...]]:
    """The tables a venue's frames yield -> the channels they come from (book snapshots
    wherever there are book changes)."""
    out = dict(venue.normalized)
    if "book_changes" in out:
        out["book_snapshots"] = out["book_changes"]
    return {t: out[t] for t in TABLES if t in out}
