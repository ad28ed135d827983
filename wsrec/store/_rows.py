"""The rows a ``SessionWriter`` has been handed and the flush thread has not taken yet.

One list per column, appended to in step: no per-row object for the garbage collector to
track. ``payload`` is appended last, so its length is the number of complete rows. The
appending thread only appends at the end; the flush thread only takes from the front
(``take``), never swaps a list, so neither needs a lock (``list.append`` is atomic).
"""

from __future__ import annotations

__all__ = ["ColumnBuffer", "COLUMNS"]

#: the columns, in the order ``wsrec.store.schema.columns_to_batch`` takes them
COLUMNS = ("seq", "ts", "mono", "conn", "stream", "dir", "kind", "channels", "symbols",
           "payload")


class ColumnBuffer:
    __slots__ = ("columns", "payloads", "bytes_out")

    def __init__(self):
        self.columns: tuple[list, ...] = tuple([] for _ in COLUMNS)
        self.payloads: list = self.columns[-1]
        self.bytes_out = 0  # payload bytes taken so far (written by the taking thread only)

    def appenders(self) -> tuple:
        """Each column's ``append``, in ``COLUMNS`` order (payload last)."""
        return tuple(c.append for c in self.columns)

    def __len__(self) -> int:
        """Complete rows waiting."""
        return len(self.payloads)

    def oldest_mono(self) -> int | None:
        """``mono`` of the oldest row waiting (None: none); safe from any thread."""
        try:
            return self.columns[2][0]
        except IndexError:
            return None

    def take(self) -> list[list]:
        """The complete rows waiting, one list per column; they are no longer waiting."""
        n = len(self.payloads)  # rows whose every column is appended
        chunk = [column[:n] for column in self.columns]
        for column in self.columns:
            del column[:n]  # appends only ever add at the end, so these n are ours
        return chunk

    def taken(self, chunk: list[list]) -> None:
        """Count ``chunk``'s payload bytes as out (written, or lost to a failure)."""
        self.bytes_out += sum(map(len, chunk[-1]))
