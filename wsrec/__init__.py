"""wsrec: record WebSocket streams byte-exact into zstd Parquet sessions, and replay them.

The Python API the CLI is built on::

    import wsrec
    with wsrec.SessionWriter("alpaca") as w:      # recording
        w.append(b'[{"T":"success","msg":"connected"}]', kind="text")
    s = wsrec.open_session("alpaca")              # that venue's newest session
    for frame in s.frames(direction="in", symbols="AAPL"):
        print(frame.seq, frame.payload)

The package, by layer (a layer imports only from the layers below it; the
contract is in pyproject.toml and checked by ``lint-imports``; modules whose names
start with ``_`` are internal)::

    cli/        the ``wsrec`` command: one library call per command
      commands    the click commands     manpages   man pages from them
      completion  shell completion of values   progress  the progress bar on stderr
    service/    running as a service, over the engines below
      config      the config file, checked  supervisor the streams: start, reload, stop
      metrics     /metrics (Prometheus) and /healthz of running recordings
    record/     from a venue into a session     replay/     from sessions out
      recorder    the connection loop          stdout     paced lines to a file
      request     what to record, checked      serve      WebSocket, TCP, Unix servers
      units       durations, sizes, ranges    formats    the output format names (light)
      formats     the import format names
      importer    jsonl, lines and HAR in       convert    Parquet, CSV, jsonl, Arrow out
      _connection the WebSocket client          normalized typed rows out, paced or to files
                                                relay      a recording served live
                                                _schedule  merged, timed rows
                                                _pacing    waiting to the microsecond
                                                _emulate   a venue's server side, driven
    sim/        each venue's simulator: asyncio and synthetic data over its server side
      serve       serving one until stopped
    store/      sessions on disk or in a bucket
      session     reading a session            writer     writing one (journal, parts)
      manifest    session.json                 schema     the row schema, Parquet options
      filters     the row predicate            lines      the envelope and raw line forms
      repair      finishing crashed sessions   verify     checking parts and journals
      info        a session's summary          upgrade    format 1 to format 2
      roots       data roots and references    atomic     tmp, fsync, rename: whole files
      location    local folders and buckets    layout     venue=/date= session folders
      rolling     one session per day or hour  migrate    older layouts moved in
      spool       where bucket sessions wait   normalized a session's typed rows
      gaps        venue sequence gaps          prune      old sessions removed
      disk        free space below a floor     follow     a live session, as it grows
      timeline    frames per time bucket       plot       a session drawn as a PNG
      _rows, _flusher  the writer's row buffer and flush thread
      _journal, _part, _lock, _connections, _uploader, _threads
      _compute    pyarrow.compute, imported on first use (fast start)
    venues/     each venue's whole protocol, no I/O: Venue and Stream (the client
                side, classification, exchange times, normalized rows, sequence
                checks), Server (the venue's side), constants
      normalize   the normalized tables, shared by every venue
      tables      their names (light: the CLI's options)
    urls        WebSocket URLs checked before anything connects
    logs        every line on stderr: text, or JSON lines (--log-format json)
    timefmt, secrets, lists, retry    times, redaction, comma lists, backoff
    errors      the one error tree (see docs/DEVELOPMENT.md)
"""

from wsrec._lazy import lazy_names
from wsrec._version import __version__

# The public names load on first use (PEP 562), so that ``import wsrec.cli`` and
# ``wsrec --help`` don't pay for pyarrow: name -> the module that defines it.
_LAZY = {
    "SessionWriter": "wsrec.store.writer",
    "open_session": "wsrec.store.session",
    "Session": "wsrec.store.session",
    "Frame": "wsrec.store.session",
    "Filters": "wsrec.store.filters",
    "WsrecError": "wsrec.errors",
    "UsageError": "wsrec.errors",
    "SessionNotFound": "wsrec.errors",
    "AmbiguousSession": "wsrec.errors",
    "SessionBusy": "wsrec.errors",
    "CorruptData": "wsrec.errors",
    "StorageError": "wsrec.errors",
    "DiskFull": "wsrec.errors",
}

__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "__version__",
    "SessionWriter",
    "open_session",
    "Session",
    "Frame",
    "Filters",
    "WsrecError",
    "UsageError",
    "SessionNotFound",
    "AmbiguousSession",
    "SessionBusy",
    "CorruptData",
    "StorageError",
    "DiskFull",
]
