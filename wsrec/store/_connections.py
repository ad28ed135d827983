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
* A ``rotate`` event (``wsrec.store.rolling``) joins two sessions of one recording. The
  new session's first row carries what was going on: ``{"from": <old id>, "open":
  [{"conn", "stream", "url", "opened": ns}], "down": [{"stream", "conn", "ts", "mono"}]}``;
  its connections start open (at their original time, with no ``open`` row), and a
  stream that was down ends its gap at its next ``open``. The old session's last row is
  ``{"to": <new id>}``, which changes nothing: its open connections stay ``closed: null``.
"""

from __future__ import annotations

import json

from wsrec.timefmt import format_ns

__all__ = ["ConnectionTracker", "track", "OPEN", "LOSS", "ROTATE"]

OPEN = "open"
LOSS = ("close", "error")
ROTATE = "rotate"


class ConnectionTracker:
    def __init__(self):
        self.connections: list[dict] = []
        self.gaps: list[dict] = []
        self._open: dict[int, dict] = {}
        self._lost: dict[str | None, tuple[int, int, int]] = {}
        self._opened_ns: dict[int, int] = {}

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
            self._opened_ns[conn] = ts_ns
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
        if kind == ROTATE:
            return self._carried(_info(payload))
        return False

    def _carried(self, info: dict) -> bool:
        """A ``rotate`` row's ``open`` and ``down``: the state the previous session of the
        recording ended with. Entries that aren't well formed are skipped (the rows are
        data from disk)."""
        changed = False
        for item in _items(info.get("open")):
            conn, opened, stream = item.get("conn"), item.get("opened"), item.get("stream")
            if not _conn(conn) or not _time(opened) or not _str_or_none(stream) \
                    or conn in self._open:
                continue
            entry = {"conn": conn, "stream": stream, "opened": format_ns(opened),
                     "closed": None}
            if isinstance(item.get("url"), str):
                entry["url"] = item["url"]
            self.connections.append(entry)
            self._open[conn] = entry
            self._opened_ns[conn] = opened
            changed = True
        for item in _items(info.get("down")):
            stream, conn, ts, mono = (item.get(k) for k in ("stream", "conn", "ts", "mono"))
            if _str_or_none(stream) and _conn(conn) and _time(ts) and _int(mono):
                self._lost.setdefault(stream, (ts, mono, conn))
        return changed

    def carry(self) -> dict:
        """What a ``rotate`` row of the next session needs: the connections open now and
        the streams down (lost and not yet back)."""
        return {
            "open": [{"conn": conn, "stream": e["stream"], "opened": self._opened_ns[conn],
                      **({"url": e["url"]} if "url" in e else {})}
                     for conn, e in self._open.items()],
            "down": [{"stream": stream, "conn": conn, "ts": ts, "mono": mono}
                     for stream, (ts, mono, conn) in self._lost.items()],
        }

    def as_dict(self) -> dict:
        return {"connections": self.connections, "gaps": self.gaps}


_INT64 = (-(1 << 63), (1 << 63) - 1)


_TIMES = (0, 253_402_300_799 * 1_000_000_000)   # 1970 to 9999-12-31T23:59:59Z


def _int(value, bounds=_INT64) -> bool:
    return type(value) is int and bounds[0] <= value <= bounds[1]


def _conn(value) -> bool:
    return _int(value, (0, (1 << 31) - 1))


def _time(value) -> bool:
    return _int(value, _TIMES)


def _str_or_none(value) -> bool:
    return value is None or isinstance(value, str)


def _items(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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
