"""Connections and gaps, derived from a session's event rows.

Every writer of sessions (the recorder, ``import``, ``repair``, an upgrade) feeds the
event rows it writes through ``SessionWriter.append``, which feeds them here, so the
manifest's ``connections`` and ``gaps`` come from one place whoever wrote the rows.

* ``conn`` numbers physical connections: a connection starts at an ``open`` event and
  ends at the next ``close`` or ``error`` event of the same ``conn`` (or stays open).
* ``stream`` names the logical stream a recorder keeps alive across reconnects (a Vega
  path, a Flow or dfuse shard); rows outside any connection (``reconnect``, a failed
  connect's ``error``) have a ``stream`` and no ``conn``.
* A gap is the time a stream spent disconnected, between a loss (``close`` or
  ``error``) and its next ``open``: data could not arrive then. Replay keeps gaps as
  silence, or collapses them with ``--skip-gaps``.
"""

from __future__ import annotations

import json

from wsrec.timefmt import format_ns

__all__ = ["ConnectionTracker", "track", "OPEN", "LOSS"]

OPEN = "open"
LOSS = ("close", "error")


class ConnectionTracker:
    def __init__(self):
        self.connections: list[dict] = []
        self.gaps: list[dict] = []
        self._open: dict[int, dict] = {}
        self._lost: dict[str | None, tuple[int, int, int]] = {}

    def feed(self, kind: str, conn: int | None, stream: str | None, ts_ns: int, mono_ns: int,
             payload: bytes) -> bool:
        """Account for one event row; True when connections or gaps changed."""
        if kind == OPEN:
            info = _info(payload)
            entry = {"conn": conn, "stream": stream, "opened": format_ns(ts_ns), "closed": None}
            if "url" in info:
                entry["url"] = info["url"]
            self.connections.append(entry)
            self._open[conn] = entry
            lost = self._lost.pop(stream, None)
            if lost is not None:
                self.gaps.append({
                    "stream": stream,
                    "after_conn": lost[2],
                    "conn": conn,
                    "start": format_ns(lost[0]),
                    "end": format_ns(ts_ns),
                    "mono_start": lost[1],
                    "mono_end": mono_ns,
                    "duration_ns": mono_ns - lost[1],
                })
            return True
        if kind in LOSS and conn is not None:
            entry = self._open.pop(conn, None)
            if entry is None:
                return False  # a second loss event (error then close) for one connection
            info = _info(payload)
            entry["closed"] = format_ns(ts_ns)
            for key in ("code", "reason", "error"):
                if key in info:
                    entry[key] = info[key]
            self._lost[entry["stream"]] = (ts_ns, mono_ns, conn)
            return True
        return False

    def as_dict(self) -> dict:
        return {"connections": self.connections, "gaps": self.gaps}


def _info(payload: bytes) -> dict:
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def track(frames) -> ConnectionTracker:
    """A tracker fed with the event rows among ``frames`` (``Frame`` tuples)."""
    tracker = ConnectionTracker()
    for f in frames:
        if f.dir == "event":
            tracker.feed(f.kind, f.conn, f.stream, f.ts, f.mono_ns, f.payload)
    return tracker
