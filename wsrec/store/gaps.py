"""Venue-level gaps inside a session (``wsrec verify --deep``).

wsrec's own numbering (``seq``) proves that no stored row is missing; it cannot prove
that the venue sent everything. Venues that number what they send say that themselves:
Vega depth updates chain ``previousSequenceNumber`` to the last ``sequenceNumber``, Flow
block heights climb by one per subscription, dfuse progress markers come every N blocks.
Each venue's rules are in its module (``Venue.sequenced``, ``Venue.check_sequence``);
this reads the frames they need, connection by connection, and collects what they find.
"""

from __future__ import annotations

from wsrec.store.session import Session
from wsrec.timefmt import format_ns
from wsrec.venues import VENUES
from wsrec.venues.normalize import MAP_ERRORS

__all__ = ["venue_gaps", "describe_gap"]


def venue_gaps(session: Session) -> tuple[list[dict], int]:
    """(gaps, frames that could not be decoded) of ``session``. A gap is a dict: stream,
    conn, seq and ts of the frame that revealed it, ``what`` happened, and its ``size``
    (messages or blocks missing or repeated)."""
    make = VENUES.get(session.rules)
    venue = make() if make is not None else None
    if venue is None or not venue.sequenced:
        return [], 0
    gaps: list[dict] = []
    undecodable = 0
    states: dict = {}
    columns = ["seq", "ts", "stream", "conn", "kind", "channel", "payload"]
    for batch in session.batches(columns=columns, direction="in",
                                 channels=list(venue.sequenced)):
        cols = [batch.column(c) for c in columns]
        cols[1] = cols[1].cast("int64")
        for seq, ts, stream, conn, kind, channel, payload in zip(*(c.to_pylist()
                                                                    for c in cols)):
            try:
                message = venue.decode(payload, kind == "text")
            except (ValueError, RecursionError, TypeError):
                undecodable += 1
                continue
            state = states.setdefault((stream, conn), {})
            try:
                found = list(venue.check_sequence(message, channel, state))
            except MAP_ERRORS:
                undecodable += 1
                continue
            gaps += [{"stream": stream, "conn": conn, "seq": seq, "ts": format_ns(ts),
                      "what": what, "size": size} for what, size in found]
    return gaps, undecodable


def describe_gap(gap: dict) -> str:
    """One line for a gap."""
    return (f"gap in stream {gap['stream']} (conn {gap['conn']}) at seq {gap['seq']} "
            f"({gap['ts']}): {gap['what']} ({gap['size']:,} missing or repeated)")
