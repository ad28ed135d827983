"""Manifests for the manifest tests: a full, valid one, and every field broken in turn."""

import copy

SHA = "9b1f94141c1e25630649744e5436c74754e48e093709aee088f81b78cda6b10e"
FULL = {
    "format_version": 2, "venue": "alpaca", "session": "20261118T110640Z-a1a1",
    "wsrec_version": "0.1.0", "args": {"symbols": ["FAKEPACA"], "secret": "***"},
    "settings": {"flush_interval": 1.0, "part_bytes": 268435456, "part_seconds": 3600.0,
                 "row_group_rows": 131072, "row_group_bytes": 33554432,
                 "compression_level": 6},
    "status": "complete", "started": "2026-11-18T11:06:40.000000000Z",
    "ended": "2026-11-18T11:06:51.454412030Z", "error": None,
    "parts": [
        {"file": "part-000000.parquet", "rows": 307, "seq_first": 0, "seq_last": 306,
         "mono_first": 5000572386, "mono_last": 16454412030,
         "start": "2026-11-18T11:06:40.000572386Z", "end": "2026-11-18T11:06:51.454412030Z",
         "bytes": 12184, "raw_bytes": 39563, "frames_in": 300, "frames_out": 2, "events": 5,
         "sha256": SHA},
        {"file": "part-000001.parquet", "rows": 3, "seq_first": 307, "seq_last": 309,
         "mono_first": 16454412031, "mono_last": 16454412099,
         "start": "2026-11-18T11:06:51.454412031Z", "end": "2026-11-18T11:06:51.454412099Z",
         "bytes": 9000, "raw_bytes": 300, "sha256": SHA},
    ],
    "connections": [
        {"conn": 0, "stream": "test", "opened": "2026-11-18T11:06:40.000572386Z",
         "closed": "2026-11-18T11:06:45.000000000Z", "url": "wss://x/v2/test", "code": 1006,
         "reason": ""},
        {"conn": 1, "stream": "test", "opened": "2026-11-18T11:06:46.000000000Z",
         "closed": None, "url": {"odd": "but any JSON value comes from a payload"}},
    ],
    "gaps": [
        {"stream": "test", "after_conn": 0, "conn": 1, "start": "2026-11-18T11:06:45Z",
         "end": "2026-11-18T11:06:46Z", "mono_start": 9000000000, "mono_end": 10000000000,
         "duration_ns": 1000000000},
    ],
}


def with_field(path: str, value, manifest: dict | None = None):
    """A copy of ``manifest`` (default FULL) with the field at ``path`` ('parts.0.rows')
    set, or removed when ``value`` is DELETE."""
    data = copy.deepcopy(FULL if manifest is None else manifest)
    keys = path.split(".")
    obj = data
    for key in keys[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    last = int(keys[-1]) if isinstance(obj, list) else keys[-1]
    if value is DELETE:
        del obj[last]
    else:
        obj[last] = value
    return data


DELETE = object()
NAN = float("nan")

#: (field path, value, the field named in the message); every field wsrec reads, each
#: broken in the ways it can be: wrong type, out of range, missing, garbage time
BROKEN = [
    ("format_version", "2", "format_version"), ("format_version", 0, "format_version"),
    ("format_version", True, "format_version"), ("format_version", DELETE, "format_version"),
    ("format_version", 1.5, "format_version"),
    ("venue", 5, "venue"), ("venue", "", "venue"), ("venue", "../etc", "venue"),
    ("venue", "a/b", "venue"), ("venue", DELETE, "venue"),
    ("session", None, "session"), ("session", "..", "session"), ("session", DELETE, "session"),
    ("session", "x\n", "session"),
    ("status", "weird", "status"), ("status", 1, "status"), ("status", DELETE, "status"),
    ("started", "garbage", "started"), ("started", 5, "started"),
    ("started", "1500-01-01T00:00:00Z", "started"), ("started", "2263-01-01T00:00:00Z", "started"),
    ("started", "2026-13-01T00:00:00Z", "started"), ("ended", [], "ended"),
    ("ended", "soon", "ended"),
    ("error", 5, "error"), ("wsrec_version", 1, "wsrec_version"),
    ("args", [1], "args"), ("args", "x", "args"),
    ("settings", None, "settings"), ("settings", [], "settings"),
    ("settings.compression_level", "high", "settings.compression_level"),
    ("settings.compression_level", 99, "settings.compression_level"),
    ("settings.flush_interval", -1, "settings.flush_interval"),
    ("settings.flush_interval", NAN, "settings.flush_interval"),
    ("settings.part_bytes", 0, "settings.part_bytes"),
    ("settings.row_group_rows", 1.5, "settings.row_group_rows"),
    ("settings.row_group_bytes", "32M", "settings.row_group_bytes"),
    ("settings.part_seconds", None, "settings.part_seconds"),
    ("upgraded_from", "1", "upgraded_from"),
    ("parts", "many", "parts"), ("parts", {}, "parts"), ("parts", None, "parts"),
    ("parts", DELETE, "parts"),
    ("parts.0", "x", "parts[0]"), ("parts.0", None, "parts[0]"), ("parts.1", [], "parts[1]"),
    ("parts.0.file", DELETE, "parts[0].file"), ("parts.0.file", 5, "parts[0].file"),
    ("parts.0.file", "/etc/passwd", "parts[0].file"),
    ("parts.0.file", "../other/part-000000.parquet", "parts[0].file"),
    ("parts.0.file", "part-000000.parquet/../../x", "parts[0].file"),
    ("parts.0.file", "/data/elsewhere/s/part-000000.parquet", "parts[0].file"),
    ("parts.0.file", "part-0.parquet", "parts[0].file"),
    ("parts.0.file", "part-000000.parquet\n", "parts[0].file"),
    ("parts.0.file", "part-000000.journal", "parts[0].file"),
    ("parts.0.file", "session.json", "parts[0].file"), ("parts.0.file", "", "parts[0].file"),
    ("parts.0.file", "part-\u0661\u0662\u0663\u0664\u0665\u0666.parquet", "parts[0].file"),
    ("parts.1.file", "part-000000.parquet", "parts[1].file"),  # listed twice
    ("parts.0.rows", "many", "parts[0].rows"), ("parts.0.rows", -1, "parts[0].rows"),
    ("parts.0.rows", 1.5, "parts[0].rows"), ("parts.0.rows", None, "parts[0].rows"),
    ("parts.0.rows", True, "parts[0].rows"), ("parts.0.rows", 2**64, "parts[0].rows"),
    ("parts.0.rows", DELETE, "parts[0].rows"), ("parts.0.rows", NAN, "parts[0].rows"),
    ("parts.0.seq_first", -1, "parts[0].seq_first"),
    ("parts.0.seq_first", "0", "parts[0].seq_first"),
    ("parts.0.seq_first", DELETE, "parts[0].seq_first"),
    ("parts.0.seq_first", 500, "parts[0].seq_first"),          # after seq_last
    ("parts.1.seq_first", 0, "parts[1].seq_first"),            # not after part 0
    ("parts.0.seq_last", DELETE, "parts[0].seq_last"),
    ("parts.0.seq_last", "x", "parts[0].seq_last"),
    ("parts.0.mono_first", "x", "parts[0].mono_first"),
    ("parts.0.mono_first", 2**63, "parts[0].mono_first"),
    ("parts.0.mono_first", 20000000000, "parts[0].mono_first"),  # after mono_last
    ("parts.0.mono_last", None, "parts[0].mono_last"),
    ("parts.0.start", "garbage", "parts[0].start"), ("parts.0.start", 5, "parts[0].start"),
    ("parts.0.start", DELETE, "parts[0].start"),
    ("parts.0.start", "1000-01-01T00:00:00Z", "parts[0].start"),
    ("parts.0.start", "2026-11-19T00:00:00Z", "parts[0].start"),  # after end
    ("parts.0.end", "garbage", "parts[0].end"), ("parts.0.end", DELETE, "parts[0].end"),
    ("parts.0.end", None, "parts[0].end"),
    ("parts.0.bytes", "x", "parts[0].bytes"), ("parts.0.bytes", -5, "parts[0].bytes"),
    ("parts.0.bytes", DELETE, "parts[0].bytes"),
    ("parts.0.raw_bytes", -1, "parts[0].raw_bytes"),
    ("parts.0.frames_in", -1, "parts[0].frames_in"), ("parts.0.events", "5", "parts[0].events"),
    ("parts.0.sha256", "abc", "parts[0].sha256"), ("parts.0.sha256", "g" * 64, "parts[0].sha256"),
    ("parts.0.sha256", SHA.upper(), "parts[0].sha256"), ("parts.0.sha256", 5, "parts[0].sha256"),
    ("parts.0.sha256", DELETE, "parts[0].sha256"),
    ("connections", "x", "connections"), ("connections", None, "connections"),
    ("connections.0", 5, "connections[0]"), ("connections.0", {}, "connections[0].conn"),
    ("connections.0.conn", "0", "connections[0].conn"),
    ("connections.0.conn", 2**40, "connections[0].conn"),
    ("connections.0.stream", 5, "connections[0].stream"),
    ("connections.0.stream", ["a"], "connections[0].stream"),
    ("connections.0.opened", "garbage", "connections[0].opened"),
    ("connections.0.opened", DELETE, "connections[0].opened"),
    ("connections.0.closed", 5, "connections[0].closed"),
    ("gaps", "x", "gaps"), ("gaps.0", 5, "gaps[0]"), ("gaps.0", {}, "gaps[0].start"),
    ("gaps.0.duration_ns", "1", "gaps[0].duration_ns"),
    ("gaps.0.duration_ns", -1, "gaps[0].duration_ns"),
    ("gaps.0.duration_ns", DELETE, "gaps[0].duration_ns"),
    ("gaps.0.start", "garbage", "gaps[0].start"), ("gaps.0.end", DELETE, "gaps[0].end"),
    ("gaps.0.mono_start", "x", "gaps[0].mono_start"),
    ("gaps.0.mono_start", 20000000000, "gaps[0].mono_start"),  # after mono_end
    ("gaps.0.stream", [1], "gaps[0].stream"), ("gaps.0.after_conn", "a", "gaps[0].after_conn"),
    ("lost", "x", "lost"), ("lost", [5], "lost[0]"),
    ("lost", [{"seq_first": "a"}], "lost[0].seq_first"), ("lost", [{"rows": -3}], "lost[0].rows"),
]
