"""A session's normalized view: trades, quotes, books, bars, blocks, actions as typed rows.

``Normalized(sessions, "trades")`` iterates Arrow record batches of
``wsrec.venues.normalize.schema(table)``, session after session (in the order given), each
session's rows in its frames' order. Only the frames of the channels that carry the
table are read and decoded. Afterwards (or during the iteration) ``frames``, ``mapped``,
``unmapped`` and ``unmapped_seqs`` say how many frames were read, how many gave rows (or
were empty updates), and which could not be mapped: those are reported, never silently
dropped (``report()``).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from wsrec.errors import UsageError
from wsrec.store.filters import Filters
from wsrec.venues import VENUES
from wsrec.venues.normalize import Normalizer, parse_table, schema, tables

__all__ = ["Normalized", "tables_of"]


def tables_of(venue: str) -> list[str]:
    """The normalized tables a venue's sessions yield."""
    make = VENUES.get(venue)
    return list(tables(make())) if make is not None else []


class Normalized:
    def __init__(self, sessions, table: str, filters: Filters | None = None, *,
                 batch_size: int = 65_536):
        self.sessions = list(sessions)
        self.table, self.depth, self.interval_ns = parse_table(table)
        self.schema = schema(self.table, self.depth)
        self.filters = filters or Filters()
        self.batch_size = batch_size
        self.frames = self.mapped = self.unmapped = 0
        self.unmapped_seqs: list[tuple[str, int]] = []   # (session id, seq), the first few
        for session in self.sessions:
            if self.table not in tables_of(session.rules):
                have = ", ".join(tables_of(session.rules)) or "none"
                raise UsageError(f"{session.venue}/{session.id} has no {self.table} (its "
                                 f"normalized tables: {have}; see 'wsrec venues "
                                 f"{session.rules}')", param="normalize")

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for session in self.sessions:
            yield from self._session(session)

    def count(self) -> int:
        """How many frames the iteration reads (for a progress total)."""
        total = 0
        for session in self.sessions:
            f = self._frame_filters(session)
            if f.channels:
                total += sum(b.num_rows for b in session.batches(f, columns=["seq"]))
        return total

    def _frame_filters(self, session) -> Filters:
        """The user's filters, narrowed to the received frames of the table's channels."""
        f = self.filters
        carried = frozenset(tables(VENUES[session.rules]())[self.table])
        return dataclasses.replace(f, channels=(f.channels & carried) if f.channels
                                   else carried, directions=frozenset({"in"}))

    def _session(self, session) -> Iterator[pa.RecordBatch]:
        normalizer = Normalizer(VENUES[session.rules](), self.table, self.depth,
                                self.interval_ns)
        for link in session.manifest.get("connections") or ():
            if isinstance(link, dict) and isinstance(link.get("url"), str):
                normalizer.connection(link.get("stream"), link.get("conn"), link["url"])
        f = self._frame_filters(session)
        symbols = pa.array(sorted(f.symbols), pa.string()) if f.symbols else None
        try:
            if f.channels:
                for batch in session.batches(f, columns=normalizer.columns,
                                             batch_size=self.batch_size):
                    self.frames += batch.num_rows
                    out = self._only(normalizer.feed(batch), symbols)
                    if out.num_rows:
                        yield out
            last = self._only(normalizer.finish(), symbols)
            if last.num_rows:
                yield last
        finally:
            self.mapped += normalizer.mapped
            self.unmapped += normalizer.unmapped
            room = Normalizer.KEEP - len(self.unmapped_seqs)
            self.unmapped_seqs += [(session.id, s) for s in normalizer.unmapped_seqs[:room]]

    @staticmethod
    def _only(batch: pa.RecordBatch, symbols) -> pa.RecordBatch:
        if symbols is None or not batch.num_rows or "symbol" not in batch.schema.names:
            return batch
        return batch.filter(pc.fill_null(pc.is_in(batch.column("symbol"), symbols), False))

    def summary(self) -> dict:
        return {"table": self.table, "frames": self.frames, "mapped": self.mapped,
                "unmapped": self.unmapped,
                "unmapped_seqs": [{"session": s, "seq": q} for s, q in self.unmapped_seqs]}

    def report(self) -> str | None:
        """One line about the frames that could not be mapped (None: there were none)."""
        if not self.unmapped:
            return None
        shown = ", ".join(f"{s}:{q}" for s, q in self.unmapped_seqs[:5])
        more = ", ..." if self.unmapped > 5 else ""
        return (f"{self.unmapped:,} of {self.frames:,} frames could not be mapped to "
                f"{self.table} (session:seq {shown}{more}); they stay in the session as "
                f"received")
