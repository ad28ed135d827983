"""The ``wsrec`` command: parses options, makes one library call, prints the result.

Data goes to stdout, messages to stderr. Errors are mapped in one place, ``_Group``:
a ``UsageError`` (the library's, or click's own) exits 2 with click's ``Usage:``
lines, any other ``WsrecError`` exits 1 with one ``Error: ...`` line; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wsrec._version import __version__
from wsrec.cli import completion
from wsrec.errors import SessionBusy, UsageError, WsrecError
from wsrec.logs import FORMATS as LOG_FORMATS, get_format, log, set_format
from wsrec.record.formats import IMPORT_FORMATS
from wsrec.record.units import parse_seconds, parse_size
from wsrec.replay._pacing import Lateness
from wsrec.replay.formats import FORMATS
from wsrec.secrets import redact_url
from wsrec.store.layout import venue_of
from wsrec.timefmt import format_duration, format_ns, is_offset, parse_duration, parse_time

# The engines (and pyarrow, websockets, asyncio, tqdm) load inside the commands that use
# them, so that ``wsrec --help``, ``wsrec CMD --help``, ``wsrec venues`` and completion
# stay fast; tests/cli/test_startup.py checks which modules those load.
ENV_DATA = "WSREC_DATA"     # wsrec.store.location.ENV_DATA, checked by the tests

if TYPE_CHECKING:
    from wsrec.replay.stdout import ReplayOptions
    from wsrec.store.session import Session


class _LazyChoice(click.Choice):
    """A choice of the sorted keys of ``module.name`` (VENUES, SIMULATORS), imported the
    first time the choices are needed (parsing the argument, completing it), not when
    the command is defined or its help printed (the argument has a metavar)."""

    def __init__(self, module: str, name: str):
        self._source = (module, name)
        super().__init__(())

    @property
    def choices(self):
        if self._choices is None:
            import importlib
            module, name = self._source
            self._choices = tuple(sorted(getattr(importlib.import_module(module), name)))
        return self._choices

    @choices.setter
    def choices(self, value):
        self._choices = tuple(value) or None


def _parse_speed(text):
    from wsrec.replay.stdout import parse_speed
    return parse_speed(text)

__all__ = ["main", "cli"]


class _Group(click.Group):
    """Every command runs inside this guard, the one place errors become exit codes: a
    UsageError exits 2 as click's usage errors do (``Invalid value for --OPTION`` when
    it names an option of the command), any other WsrecError becomes one ``Error:``
    line (exit 1), and so does a failure to write stdout (ENOSPC, a closed descriptor,
    ...), once the command's output is flushed; a reader that went away (EPIPE, ``|
    head``) is a normal end (exit 0, silent)."""

    def invoke(self, ctx):
        try:
            try:
                rv = super().invoke(ctx)
            except (click.exceptions.Exit, SystemExit):
                try:
                    _flush_stdout()
                except _StdoutGone:
                    pass  # the exit code the command chose stands
                raise
            _flush_stdout()
            return rv
        except UsageError as exc:
            raise _usage_error(exc, self._command_context(ctx)) from None
        except WsrecError as exc:
            raise _Failure(str(exc)) from None
        except click.ClickException as exc:   # a command's own: a JSON line too
            if get_format() != "json" or isinstance(exc, (click.UsageError, _Failure)):
                raise
            failure = _Failure(exc.format_message())
            failure.exit_code = exc.exit_code
            raise failure from None
        except _StdoutGone:
            raise click.exceptions.Exit(0) from None
        except _StdoutFailed as exc:
            raise click.ClickException(_stdout_message(exc)) from None

    def _command_context(self, ctx) -> click.Context:
        """A context of the command that failed (for its ``Usage:`` line and options);
        the group's own when no command was reached."""
        name = ctx.invoked_subcommand
        command = self.get_command(ctx, name) if name else None
        return click.Context(command, info_name=name, parent=ctx) if command else ctx


class _Failure(click.ClickException):
    """A runtime failure (exit 1): click's ``Error: ...`` line, or with ``--log-format
    json`` an ``error`` JSON line (``wsrec.logs``)."""

    def show(self, file=None) -> None:
        if get_format() == "json":
            log(self.format_message(), "error")
        else:
            super().show(file)


def _usage_error(exc: UsageError, ctx: click.Context) -> click.UsageError:
    """The click form of a library UsageError: ``Invalid value for --OPTION: ...`` when
    its ``param`` is an option of the command, options named in the message when it is
    about several."""
    message = str(exc)
    if isinstance(exc.param, str):
        option = _option_name(ctx, exc.param)
        if option is not None:
            message = message.removeprefix(f"{exc.param}: ")
            return click.BadParameter(message, ctx=ctx, param_hint=option)
    elif isinstance(exc.param, tuple):
        for name in exc.param:
            option = _option_name(ctx, name)
            if option is not None:
                message = re.sub(rf"\b{re.escape(name)}\b", option, message)
    return click.UsageError(message, ctx)


def _option_name(ctx: click.Context, name: str) -> str | None:
    """The option a library argument ``name`` is given by in this command (``--to`` for
    ``target``), or None."""
    for param in ctx.command.params if ctx.command is not None else ():
        if param.name == name and isinstance(param, click.Option) and not param.hidden:
            return next((o for o in param.opts if o.startswith("--")), param.opts[0])
    return None


def _parsed_by(parse):
    """A click callback that returns ``parse(value)`` (None stays None, and so does the
    text while completing: no parser loads); a UsageError it raises is about this option."""
    def callback(ctx, param, value):
        if value is None or ctx.resilient_parsing:
            return value
        try:
            return parse(value)
        except UsageError as exc:
            exc.param = exc.param or param.name
            raise
    return callback


class _StdoutFailed(OSError):
    """A write to stdout failed (raised by the stdout that ``main`` installs)."""


class _StdoutGone(BrokenPipeError):
    """The reader of stdout went away (EPIPE). No errno, so that click's own EPIPE
    handling (exit 1) leaves it to ``main``."""


def _stdout_message(exc: OSError) -> str:
    return f"cannot write to stdout: {exc.strerror or exc}"


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (AttributeError, ValueError):  # none, or closed: nothing can be pending
        pass


class _Stdout(io.RawIOBase):
    """Descriptor 1 under ``sys.stdout``: the first failed write raises _StdoutGone or
    _StdoutFailed; writes after it are dropped, so exiting never fails a second time."""

    def __init__(self, fd: int = 1):
        self.fd = fd
        self.failed = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self.fd)
        except OSError:
            return False

    def write(self, data) -> int | None:
        if self.failed:
            return len(data)
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return None  # as FileIO does: the buffer keeps it
        except OSError as exc:
            self.failed = True
            if exc.errno == errno.EPIPE:
                raise _StdoutGone("Broken pipe") from None
            raise _StdoutFailed(exc.errno, exc.strerror) from None


def _guard_standard_streams() -> None:
    """Before any file is opened: hold descriptors 0-2 if they are closed (``>&-``), so
    that no file wsrec opens becomes descriptor 1 and receives stdout's lines; stdout is
    then held read-only, so writing it fails (EBADF) and says so. Then put ``_Stdout``
    under ``sys.stdout``."""
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            held = os.open(os.devnull, flags)
        except OSError:
            continue
        if held != fd:
            os.dup2(held, fd)
            os.close(held)
    if sys.stdin is None:
        sys.stdin = open(0, "r", closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")
    old = sys.stdout
    if old is not None:
        try:
            old.flush()
        except (OSError, ValueError):
            pass
    raw = _Stdout(1)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=getattr(old, "encoding", None) or "utf-8",
        errors=getattr(old, "errors", None) or "strict",
        line_buffering=old.line_buffering if old is not None else raw.isatty(),
        write_through=getattr(old, "write_through", False))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.version_option(__version__, prog_name="wsrec")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
              envvar="WSREC_LOG_FORMAT", show_default=True,
              help="Messages on stderr as text lines, or as JSON lines (ts, level, msg, "
                   "fields) for log shippers; json turns progress bars off [env "
                   "WSREC_LOG_FORMAT].")
def cli(log_format):
    """Record WebSocket market-data and blockchain streams byte-exact, and replay them.

    Sessions live under a data root (--data, $WSREC_DATA, default ./wsrec-data), one
    folder per venue and one per session. SESSION arguments accept a session folder, an
    id or unique prefix, 'last', or a venue name (its newest session).

    Each command has its own --help and man page (man wsrec-COMMAND).

    Example:

    \b
        wsrec record alpaca --symbols FAKEPACA --sim --duration 10s
        wsrec ls alpaca
        wsrec verify last && wsrec info last
        wsrec replay last --speed max | jq -c .
        wsrec convert last --format parquet -o last.parquet
    """
    set_format(log_format)


#: commands that write into the data root: they need a local folder in this version
#: (``record`` and ``import`` write to a bucket through a spool: ``wsrec.store.spool``)
_WRITES = ("repair", "migrate")


def data_option(f):
    """--data and --s3-endpoint. Commands that read get ``data`` as a ``Root``
    (``wsrec.store.location.open_root``); the writing ones (``_WRITES``) get the local
    folder as given, and a usage error for a bucket."""
    @functools.wraps(f)
    def command(*args, data=None, s3_endpoint=None, **kwargs):
        from wsrec.store.location import is_remote_url, open_root
        name = click.get_current_context().info_name
        if name == "repair":
            kwargs["s3_endpoint"] = s3_endpoint   # --spool uploads
        if name in _WRITES and kwargs.get("spool") is None:
            if data is not None and is_remote_url(data) or \
                    data is None and is_remote_url(os.environ.get(ENV_DATA) or ""):
                raise UsageError(f"{name} writes to a local data root; s3:// and gs:// "
                                 f"roots are read-only in this version", param="data")
            return f(*args, data=data, **kwargs)
        if name in _WRITES:
            return f(*args, data=data, **kwargs)
        if name in ("record", "config") and not (is_remote_url(data) or data is None and
                                                 is_remote_url(os.environ.get(ENV_DATA) or "")):
            return f(*args, data=data, **kwargs)   # a local root: as given
        return f(*args, data=open_root(data, endpoint=s3_endpoint), **kwargs)

    command = click.option(
        "--s3-endpoint", metavar="URL", default=None, callback=_parsed_by(_endpoint),
        help="S3 endpoint of an s3:// data root: MinIO, Ceph, R2, ... [env "
             "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; default: AWS].")(command)
    return click.option("--data", metavar="DIR|URL", envvar=ENV_DATA, default=None,
                        callback=_parsed_by(_check_root), shell_complete=completion.dir_path,
                        help=f"Data root: a local folder, or s3://bucket/prefix to read "
                             f"sessions from object storage [env {ENV_DATA}; default "
                             f"./wsrec-data].")(command)


def _check_root(text: str):
    from wsrec.store.roots import check_root
    return check_root(text)


def _endpoint(text: str) -> str:
    from wsrec.store.location import parse_endpoint
    parse_endpoint(text)
    return text


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def repair_option(f):
    return click.option("--repair", "do_repair", is_flag=True,
                        help="Repair a crashed session first (see 'wsrec repair').")(f)


def _open(ref: str, data, do_repair: bool = False, warn: bool = True) -> Session:
    from wsrec.store.roots import resolve
    from wsrec.store.session import Session
    folder = resolve(ref, data)
    if do_repair and not isinstance(folder, Path):
        raise UsageError(f"--repair: {folder} is in object storage, which is read-only in "
                         f"this version; repair it where it was recorded", param="do_repair")
    if do_repair:
        from wsrec.store.repair import repair as repair_session
        for line in repair_session(folder):
            log(f"repair: {line}")
    session = Session(folder)
    if not warn:
        pass
    elif session.crashed:
        log(f"{session.venue}/{session.id} crashed while recording; showing what it "
            f"flushed (run 'wsrec repair' to finish it)", "warning")
    elif session.live:
        log(f"note: {session.venue}/{session.id} is still recording; showing what is "
            f"flushed so far")
    return session


def _json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


def format_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@cli.command("ls")
@click.argument("venue", required=False, shell_complete=completion.venue_names)
@click.option("--since", metavar="TIME", callback=_parsed_by(parse_time),
              help="Only sessions with rows at or after TIME (ISO 8601, UTC).")
@click.option("--until", metavar="TIME", callback=_parsed_by(parse_time),
              help="Only sessions that began before TIME.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list finished sessions without an inbound frame (a recorder that "
                   "never got through; hidden by default).")
@data_option
@json_option
def ls_cmd(venue, since, until, show_all, data, as_json):
    """List sessions, oldest first. With --since/--until, only the date folders of the
    range are listed, and only the manifests of sessions begun before --since are read.

    FRAMES counts the inbound frames, as 'wsrec info' does (--json also has frames_out,
    events, and rows: all of them). Finished sessions without an inbound frame (a
    recorder that never got through) stay on disk but are listed only with --all.

    Example:

    \b
        wsrec ls
        wsrec ls alpaca --json | jq '.[].id'
        wsrec ls hyperliquid --since 2026-11-20 --until 2026-11-22
    """
    from wsrec.store.info import is_empty, summary
    from wsrec.store.roots import session_folders, sessions_between
    from wsrec.store.session import Session
    rows = []

    def warn(message):
        log(str(message), "warning")

    folders = session_folders(data, venue, warn=warn) if since is None and until is None \
        else sessions_between(data, venue, since, until, warn=warn)
    # one session that can't be read is one warning and one row, never the end of the list
    for folder in folders:
        try:
            rows.append(summary(Session(folder)))
        except (WsrecError, OSError) as exc:
            warn(exc if isinstance(exc, WsrecError) else f"{folder}: {exc}")
            state = "no manifest" if getattr(exc, "missing", False) else "unreadable"
            rows.append({"venue": venue_of(folder), "id": folder.name, "path": str(folder),
                         "start": None, "end": None, "duration_ns": None, "frames": None,
                         "frames_in": None, "frames_out": None, "events": None,
                         "rows": None, "bytes": None, "status": state, "state": state,
                         "live": False, "crashed": False, "problem": str(exc)})
    hidden = 0 if show_all else sum(map(is_empty, rows))
    if hidden:
        failed = sum(1 for r in rows if is_empty(r) and r.get("status") == "failed")
        rows = [r for r in rows if not is_empty(r)]
        log(f"{hidden} empty session{'s' if hidden > 1 else ''} hidden"
            f"{f', {failed} of them failed' if failed else ''} (--all shows them)")
    if not rows and not hidden and data.local and not Path(data.base).is_dir() and \
            click.get_current_context().params.get("data") is not None:
        raise WsrecError(f"data root {data.url} does not exist: check --data (or "
                         f"${ENV_DATA})")
    if as_json:
        _json(rows)
        return
    if not rows:
        if not hidden:
            where = f"venue {venue!r} under " if venue else ""
            log(f"no sessions for {where}{data.url}")
        return
    table = [["VENUE", "SESSION", "START", "DURATION", "FRAMES", "SIZE", "STATUS"]]
    for r in rows:
        start = r["start"][:19].replace("T", " ") if r["start"] else "-"
        frames = f"{r['frames']:,}" if r["frames"] is not None else "-"
        table.append([r["venue"], r["id"], start, format_duration(r["duration_ns"]), frames,
                      format_bytes(r["bytes"]), r["state"]])
    click.echo(_table(table, right={3, 4, 5}))


@cli.command("info")
@click.argument("session", shell_complete=completion.session_refs)
@click.option("--width", "timeline_width", type=click.IntRange(1, 10_000), metavar="N",
              help="Columns of the rate timeline [default: what the terminal leaves, at "
                   "most 120; 100 with --json].")
@data_option
@json_option
@repair_option
def info_cmd(session, timeline_width, data, as_json, do_repair):
    """Show what a session holds: frames, bytes, time span, connections, gaps,
    counts by channel and symbol, and receive latency by channel (local receive time
    minus the venue's timestamp).

    Last comes a timeline of each stream's frame rate: one column per time bucket, a
    block as high as its frames, '·' where the stream was down (a recorded gap), a
    space where it was up but silent ('wsrec plot' draws it).

    Example:

    \b
        wsrec info last
        wsrec info alpaca --json | jq .symbols
        wsrec info last --json | jq '.timeline.streams[].frames'
    """
    import shutil

    from wsrec.store.info import details
    from wsrec.store.timeline import fit_width, timeline_lines
    if timeline_width is None:
        timeline_width = 100 if as_json else fit_width(shutil.get_terminal_size().columns)
    d = details(_open(session, data, do_repair), timeline_width=timeline_width)
    if as_json:
        _json(d)
        return
    ratio = f" ({d['compression_ratio']}x)" if d["compression_ratio"] else ""
    lines = [
        ("session", f"{d['venue']}/{d['id']}"),
        ("path", d["path"]),
        ("status", d["state"] + (f": {d['error']}" if d["error"] else "")),
        ("start", d["start"] or "-"),
        ("end", d["end"] or "-"),
        ("duration", format_duration(d["duration_ns"])),
        ("frames", f"{d['frames_in']:,} in, {d['frames_out']:,} out, {d['events']:,} events"),
        ("bytes", f"{format_bytes(d['bytes'])} on disk, {format_bytes(d['raw_bytes'])} raw"
                  f"{ratio}"),
        ("span", f"{d['first_frame'] or '-'} .. {d['last_frame'] or '-'}"),
        ("parts", f"{d['parts']}" + (f" + journal {', '.join(d['journals'])}"
                                      if d["journals"] else "")),
        ("connections", str(len(d["connections"]))),
        ("gaps", f"{len(d['gaps'])}" + (
            f" ({format_duration(sum(g['duration_ns'] for g in d['gaps']))} in all)"
            if d["gaps"] else "")),
    ]
    if "redelivered" in d:
        lines.append(("redelivered", f"{d['redelivered']:,} frames of blocks delivered again "
                                     f"after a resume (both copies stored)"))
    for c in d["connections"]:
        closed = c.get("closed") or "open"
        code = f" code {c['code']}" if "code" in c else ""
        stream = f" ({c['stream']})" if c.get("stream") is not None else ""
        lines.append(("", f"conn {c['conn']}{stream}: {c['opened']} .. {closed}{code}"))
    for g in d["gaps"]:
        stream = f"{g['stream']}: " if g.get("stream") is not None else ""
        lines.append(("", f"gap {stream}{g['start']} .. {g['end']} "
                          f"({format_duration(g['duration_ns'])})"))
    lines.append(("channels", _counts(d["channels"])))
    lines.append(("symbols", _counts(d["symbols"])))
    for channel, lat in d["latency"].items():
        lines.append(("latency" if channel == next(iter(d["latency"])) else "",
                      f"{channel}: p50 {lat['p50_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms, "
                      f"p99 {lat['p99_ms']:.3f} ms ({lat['count']:,} frames)"))
    for i, line in enumerate(timeline_lines(d["timeline"])):
        lines.append(("timeline" if i == 0 else "", line))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")


def _counts(counts: dict, limit: int = 12) -> str:
    if not counts:
        return "-"
    items = [f"{k} {v:,}" for k, v in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(items) + (f", ... ({more} more)" if more > 0 else "")


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", text)
    if not m or not (300 <= int(m.group(1)) <= 20_000 and 200 <= int(m.group(2)) <= 20_000):
        raise UsageError(f"not a picture size: {text!r} (expected WIDTHxHEIGHT in pixels, "
                         f"300x200 to 20000x20000, e.g. 1200x700)")
    return int(m.group(1)), int(m.group(2))


@cli.command("plot")
@click.argument("session", shell_complete=completion.session_refs)
@click.option("--output", "-o", metavar="PATH", type=click.Path(dir_okay=False),
              help="PNG file to write [default: SESSION_ID-rate.png in the current "
                   "folder].")
@click.option("--bucket", metavar="TIME", callback=_parsed_by(parse_duration),
              help="Bucket width, e.g. 1s, 5m [default: the narrowest round width, 1ms or "
                   "more, giving at most one bucket per 3 pixels and per 5 rows].")
@click.option("--size", metavar="WxH", default="1200x700", show_default=True,
              callback=_parsed_by(_size), help="Picture size in pixels.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@data_option
@json_option
def plot_cmd(session, output, bucket, size, force, data, as_json):
    """Draw a session's frame rate over time, per channel, into a PNG.

    Frames/s per time bucket, the time a stream was down (a recorded gap) shaded red,
    buckets with no frame grey, and where the venue stamps its frames, receive latency
    (p50 and p99 of local receive time minus the venue's time) in a second panel.
    Needs matplotlib (pip install 'wsrec[plot]'). Says which file it wrote on stderr
    (--json: what was drawn, on stdout).

    Example:

    \b
        wsrec plot last
        wsrec plot hyperliquid -o rate.png --bucket 1m --size 1600x900
    """
    from wsrec.store.plot import plot_session
    s = _open(session, data)
    result = plot_session(s, output or f"{s.id}-rate.png", bucket_ns=bucket, size=size,
                          force=force)
    if as_json:
        _json(result)
        return
    log(f"wrote {result['output']} ({size[0]}x{size[1]}, {result['buckets']:,} buckets "
        f"of {result['bucket']})")


@cli.command("verify")
@click.argument("session", shell_complete=completion.session_refs)
@click.option("--deep", is_flag=True,
              help="Also check the venue's own numbering: Vega depth sequence numbers, "
                   "Flow block heights, dfuse progress markers (reads every such frame).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@data_option
@json_option
@repair_option
def verify_cmd(session, deep, quiet, data, as_json, do_repair):
    """Check a session end to end; exit 1 naming every problem, 0 when sound.

    Checks part checksums, row counts, schema and decoding, seq continuity,
    monotonic mono_ns, and crash leftovers; with --deep, also gaps in what the venue
    sent within a connection, each named by stream, seq and size. Writes nothing
    (unless --repair).

    Example:

    \b
        wsrec verify last && echo sound
        wsrec verify vega --deep --json | jq '.gaps[] | .what'
    """
    from wsrec.store.gaps import describe_gap, venue_gaps
    from wsrec.store.verify import verify as verify_session
    s = _open(session, data, do_repair, warn=False)  # verify reports the state itself
    with _progress_bar(quiet or as_json, s.rows, unit=" rows") as bar:
        problems = verify_session(s, progress=bar)
    gaps, undecodable = venue_gaps(s) if deep and not problems else ([], 0)
    lines = problems + [describe_gap(g) for g in gaps]
    if undecodable:
        lines.append(f"{undecodable:,} numbered frame(s) could not be decoded to check "
                     f"their numbering")
    if as_json:
        report = {"venue": s.venue, "id": s.id, "path": str(s.path), "state": s.state,
                  "ok": not lines, "problems": problems}
        if deep:
            report.update(gaps=gaps, undecodable=undecodable)
        _json(report)
        if lines:
            sys.exit(1)
        return
    for line in lines:
        click.echo(line)
    if lines:
        raise click.ClickException(f"{s.venue}/{s.id}: {len(lines)} problem(s)")
    note = " (live: still recording)" if s.live else ""
    deep_note = ", no venue-level gaps" if deep else ""
    click.echo(f"ok: {s.venue}/{s.id}, {s.rows():,} rows{deep_note}{note}")


@cli.command("repair")
@click.argument("sessions", nargs=-1, metavar="[SESSION]...",
                shell_complete=completion.session_refs)
@click.option("--upgrade", is_flag=True,
              help="Also migrate sessions written in an older format (lossless).")
@click.option("--all", "every", is_flag=True, help="Every session under the data root.")
@click.option("--spool", metavar="DIR", is_flag=False, flag_value="", default=None,
              shell_complete=completion.dir_path,
              help="Finish the recordings to a bucket that a crash left in the spool "
                   "(default spool: $WSREC_SPOOL, else ~/.cache/wsrec/spool): repair, upload, "
                   "verify, then delete the local copy.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@data_option
def repair_cmd(sessions, upgrade, every, spool, quiet, data, s3_endpoint=None):
    """Rebuild a crashed session's open part from its journal and mark it recovered;
    with --upgrade, migrate sessions of an older format to the current one.

    A sound session is left untouched. Fails if a recorder still holds the session.

    Example:

    \b
        wsrec repair last && wsrec verify last
        wsrec repair --upgrade --all
        wsrec repair --spool
    """
    from wsrec.store.repair import find_session, repair as repair_session, repair_spool
    from wsrec.store.roots import session_folders
    if spool is not None:
        if sessions or every or upgrade:
            raise click.UsageError("--spool takes no SESSION, --all or --upgrade")
        lines = []
        for line in repair_spool(spool or None, endpoint=s3_endpoint):
            click.echo(line)
            lines.append(line)
        if not lines:
            log("nothing in the spool")
        kept = sum("spool copy is kept" in line for line in lines)
        if kept:
            raise click.ClickException(f"{kept} session(s) stay in the spool")
        return
    if every == bool(sessions):
        raise click.UsageError("give SESSION... or --all")
    folders = session_folders(data) if every else [find_session(ref, data) for ref in sessions]
    failed = 0
    for folder in folders:
        name = f"{venue_of(folder)}/{folder.name}"
        try:
            with _progress_bar(quiet, unit="B", in_bytes=True) as bar:
                actions = repair_session(folder, upgrade=upgrade, progress=bar.of)
        except SessionBusy:
            if not every:
                raise
            log(f"{name}: skipped, still being recorded")
            continue
        except WsrecError as exc:
            if not every:
                raise
            log(f"{name}: {exc}")
            failed += 1
            continue
        prefix = f"{name}: " if len(folders) > 1 else ""
        for line in actions:
            click.echo(prefix + line)
        if not actions and not every:
            log("nothing to repair")
    if failed:
        raise click.ClickException(f"{failed} session(s) could not be repaired")


@cli.command("migrate")
@click.option("--dry-run", is_flag=True, help="Say what would move; move nothing.")
@data_option
def migrate_cmd(dry_run, data):
    """Move sessions of the older layout (ROOT/VENUE/SESSION) into the partitioned one
    (ROOT/venue=VENUE/date=DAY/SESSION), one rename each, no byte changed.

    Sessions being recorded are left where they are. Run it once after upgrading, so
    that engines read the whole root as one partitioned table.

    Example:

    \b
        wsrec migrate --dry-run
        wsrec migrate && wsrec ls
    """
    from wsrec.store.migrate import migrate
    moved, left = migrate(data, dry_run=dry_run)
    for line in moved:
        click.echo(("would move " if dry_run else "moved ") + line)
    for line in left:
        log(str(line), "warning")
    if not moved and not left:
        log("nothing to migrate: every session is in the partitioned layout")


@cli.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              callback=_parsed_by(parse_duration),
              help="Remove the sessions that ended more than AGE ago (30d, 12h, 90m).")
@click.option("--venue", metavar="VENUE", help="Only this venue's sessions.",
              shell_complete=completion.venue_names)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--include-crashed", is_flag=True,
              help="Also remove crashed sessions never repaired (and, in a bucket, sessions "
                   "still marked recording).")
@data_option
@json_option
def prune_cmd(older_than, venue, dry_run, include_crashed, data, as_json):
    """Delete whole sessions that ended more than AGE ago, one line each on stdout.

    Never a session being recorded; a crashed one only with --include-crashed; a folder
    holding anything wsrec does not write is reported and left alone. Works on a local
    data root and in a bucket.

    Example:

    \b
        wsrec prune --older-than 30d --dry-run
        wsrec prune --older-than 12h --venue hyperliquid
        wsrec prune --older-than 90d --data s3://market-data/raw --json
    """
    from wsrec.store.prune import prune

    def warn(message):
        log(message, "warning")

    report = prune(data, older_than, venue=venue, dry_run=dry_run,
                   include_crashed=include_crashed, warn=warn)
    if as_json:
        _json(report.as_dict())
    else:
        for removed in report.removed:
            click.echo(removed.line(dry_run))
    for kept in report.kept_for("left", "error"):
        warn(f"{kept.venue}/{kept.id}: {kept.detail}")
    log(report.summary())
    failed = report.kept_for("error")
    if failed:
        raise click.ClickException(f"{len(failed)} session(s) could not be removed")


# -- recording ------------------------------------------------------------------------------

def _seconds(value: str) -> float:
    """--duration: more than 0 and at most ten years, in seconds."""
    return parse_seconds(value, "--duration")


class _Finite(click.FloatRange):
    """A float within bounds; nan and inf refused (FloatRange lets nan through)."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


_size_option = parse_size   # --spool-min-free: 1GiB, 500MB, 0, 1048576


def _metrics_address(text: str) -> str:
    """--metrics: HOST:PORT, checked (``wsrec.service.metrics.parse_address``)."""
    from wsrec.service.metrics import parse_address
    parse_address(text)
    return text


def _heartbeat(ctx, param, value):
    if value is None or ctx.resilient_parsing:   # completing: the recorder stays unloaded
        return value
    from wsrec.record.recorder import MIN_HEARTBEAT
    if 0 < value < MIN_HEARTBEAT:
        raise click.BadParameter(f"{value:g} is too short: give 0 (off) or at least "
                                 f"{MIN_HEARTBEAT:g} seconds")
    return value


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be positive")
    return value


def _params(ctx, param, values):
    out: dict = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def list_options(f):
    """--channels/-c and --symbols/-s: comma lists, repeatable (the same everywhere)."""
    f = click.option("--symbols", "-s", "symbols", multiple=True, metavar="LIST",
                     shell_complete=completion.symbol_list,
                     help="Symbols (comma list, repeatable). --symbol works too.")(f)
    f = click.option("--symbol", "symbols", multiple=True, hidden=True,
                     shell_complete=completion.symbol_list)(f)
    f = click.option("--channels", "-c", "channels", multiple=True, metavar="LIST",
                     shell_complete=completion.channel_list,
                     help="Channels (comma list, repeatable). --channel works too.")(f)
    return click.option("--channel", "channels", multiple=True, hidden=True,
                        shell_complete=completion.channel_list)(f)


class _Progress:
    """The recording's progress bar on stderr: of --max-frames frames, else of --duration
    seconds (with the frames as text), else a count of frames."""

    def __init__(self, quiet: bool, total: int | None, duration: float | None = None,
                 **bar):
        self.duration = None if total else duration
        self.bar = _progress_bar(quiet, total or duration,
                                 unit=" s" if self.duration else " frames", **bar)

    def __call__(self, rec, final: bool) -> None:
        note = (f"{format_bytes(rec.bytes_in)}, {rec.frames_out} out, "
                f"{rec.reconnects} reconnects")
        if self.duration is None:
            self.bar(rec.frames_in, note)
        else:
            left = rec.deadline - rec.clock() if rec.deadline is not None else self.duration
            self.bar(round(min(self.duration, max(0.0, self.duration - left)), 1),
                     f"{rec.frames_in:,} frames, {note}")
        if final:
            self.bar.close()


@cli.command("record")
@click.argument("venue", type=_LazyChoice("wsrec.venues", "VENUES"), metavar="VENUE",
                required=False)
@click.argument("url", required=False)
@click.option("--config", "config", metavar="FILE", type=click.Path(path_type=Path),
              help="Record every [[stream]] of this TOML file instead, each into its own "
                   "sessions (SIGHUP re-reads it); takes only --data, --quiet and --json "
                   "besides (see 'wsrec config check').")
@list_options
@click.option("--param", "-p", "params", multiple=True, callback=_params, metavar="KEY=VALUE",
              help="A venue parameter (repeatable); see 'wsrec venues VENUE'.")
@click.option("--url", "url_option", metavar="URL",
              help="Connect here instead (sandbox, testnet, a local server).")
@click.option("--sim", is_flag=True, help="Record from the built-in simulator (no network, "
                                           "no credentials).")
@click.option("--sim-rate", type=_Finite(0.001, 1e6),
              help="With --sim: data frames per second (0.001 to 1e6; default 20, and "
                   "flow's blocks at mainnet pace, one every 0.8 to 1.3 s).")
@click.option("--feed", help="alpaca: test, iex, sip, delayed_sip, crypto, indicative, opra, "
                             "news.")
@click.option("--msgpack", is_flag=True, help="alpaca: ask for binary msgpack frames.")
@click.option("--auth", type=click.Choice(["message", "headers"]),
              help="alpaca: send credentials as the auth message (default) or as headers.")
@click.option("--send", "sends", multiple=True, metavar="MSG",
              help="url: a message to send on every (re)connect (repeatable).")
@click.option("--name", help="Venue folder name for the session (url: default the host).")
@click.option("--redact", "redact_names", multiple=True, metavar="NAME",
              help="Also redact query parameters, JSON fields and headers whose name "
                   "contains NAME (repeatable); token, key, secret, password, auth, "
                   "signature, session, ... always are.")
@data_option
@click.option("--duration", callback=_parsed_by(_seconds), metavar="TIME",
              help="Stop after this long (30s, 5m, 2h).")
@click.option("--max-frames", type=int, callback=_positive, metavar="N",
              help="Stop after storing N inbound frames (welcome and acks count).")
@click.option("--flush-interval", type=_Finite(0.01, 60.0), default=1.0, show_default=True,
              metavar="SECONDS",
              help="Journal fsync interval: the most a crash can lose.")
@click.option("--rotate", type=click.Choice(["1h", "1d", "never"]), default="1d",
              show_default=True,
              help="Roll into a new session at each UTC hour or midnight (the connection "
                   "stays open), or never.")
@click.option("--spool", metavar="DIR", envvar="WSREC_SPOOL", default=None,
              shell_complete=completion.dir_path,
              help="With an s3:// or gs:// --data: the local folder sessions are written to "
                   "until uploaded [env WSREC_SPOOL; default: ~/.cache/wsrec/spool].")
@click.option("--spool-min-free", metavar="SIZE", callback=_parsed_by(_size_option),
              help="With a bucket: room for the parts waiting to be uploaded: when the "
                   "spool's disk has less free (1GiB, 500MB), the recording fails as on a "
                   "full disk [default: 1 GiB, or 5% of the disk if less].")
@click.option("--min-free", metavar="SIZE", callback=_parsed_by(_size_option),
              help="Any recording: stop cleanly (status failed, every part sealed) when the "
                   "disk written to (the data root, or the spool with a bucket) has less "
                   "free than SIZE (5GB, 500MB), checked every second and after each part; "
                   "refuse to start below it [default: no floor].")
@click.option("--upload-timeout", type=_Finite(0, 86400), default=60.0, show_default=True,
              metavar="SECONDS",
              help="With a bucket: how long the end waits for the uploads; what is left "
                   "stays in the spool for 'wsrec repair --spool'.")
@click.option("--max-retries", type=click.IntRange(min=0), metavar="N",
              help="Give up after N consecutive failed reconnects [default: never].")
@click.option("--backoff", type=_Finite(0, 86400, min_open=True), default=0.5,
              show_default=True,
              help="First reconnect delay in seconds (doubles, full jitter).")
@click.option("--backoff-max", type=_Finite(0, 86400, min_open=True), default=30.0,
              show_default=True, help="Longest reconnect delay in seconds.")
@click.option("--backoff-reset", type=_Finite(0, 30 * 86400, min_open=True), default=60.0,
              show_default=True,
              help="Seconds of healthy connection after which the backoff starts over.")
@click.option("--watchdog", type=_Finite(0, 30 * 86400), metavar="SECONDS",
              help="Reconnect after this much silence (0: off) [default: per venue].")
@click.option("--heartbeat", type=_Finite(0, 86400), callback=_heartbeat, metavar="SECONDS",
              help="Keepalive interval: 0 (off) or at least 0.1 [default: per venue].")
@click.option("--max-message-size", type=click.IntRange(1024, 2 << 30), default=256 << 20,
              show_default=True, metavar="BYTES",
              help="Largest message accepted (1 KiB to 2 GiB).")
@click.option("--metrics", metavar="HOST:PORT", callback=_parsed_by(_metrics_address),
              help="Serve Prometheus metrics at http://HOST:PORT/metrics and a health "
                   "check at /healthz while recording (port 0 picks a free one).")
@click.option("--serve", "serve", multiple=True, metavar="WHERE",
              help="Serve what is recorded, as it arrives, to local clients: "
                   "ws://HOST:PORT[/path] speaks the venue's protocol (as 'replay --to'), "
                   "tcp://HOST:PORT and unix:PATH carry lines (repeatable).")
@click.option("--serve-max-lag", type=_Finite(0, 365 * 86400, min_open=True), default=5.0,
              show_default=True, metavar="SECONDS",
              help="--serve: disconnect a client more than this many seconds behind.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
@json_option
def record_cmd(venue, url, symbols, channels, params, url_option, sim, sim_rate, feed, msgpack,
               auth, sends, name, redact_names, data, duration, max_frames, flush_interval,
               rotate, spool, spool_min_free, min_free, upload_timeout, max_retries, backoff,
               backoff_max, backoff_reset, watchdog, heartbeat, max_message_size, serve,
               serve_max_lag, metrics, quiet, as_json, config):
    """Record a venue's stream into a new session until stopped.

    Every frame in both directions is stored byte-exact with its receive time;
    connection events too. Ctrl-C, SIGTERM, --duration and --max-frames end the
    session cleanly (exit 0); a fatal error or exhausted retries mark it failed
    (exit 1).

    With --config, every stream of the file records in this one process, each
    reconnecting on its own; SIGHUP re-reads the file and starts, stops or restarts
    only the streams whose entries changed. Exit 1 if any stream failed.

    A long recording is several sessions, one per UTC day (--rotate 1d) or hour (1h),
    each continuing the one before it ('wsrec replay VENUE --start ... --end ...' plays
    them as one).

    Example:

    \b
        wsrec record alpaca --symbols FAKEPACA --sim --duration 10s
        wsrec record hyperliquid -s BTC,ETH -c trades,l2Book --duration 1h
        wsrec record url wss://example.test/ws --send '{"op":"subscribe"}'
        wsrec record hyperliquid -s BTC --serve ws://127.0.0.1:8765
        wsrec record --config wsrec.toml
    """
    from wsrec.record.recorder import RecordOptions, ignore_sighup
    from wsrec.record.request import build_request
    from wsrec.service.metrics import record_with_metrics
    from wsrec.sim import SimOptions
    if config is not None:
        _record_config(config, data, quiet, as_json)
        return
    if venue is None:
        raise click.UsageError("Missing argument 'VENUE' (or give --config FILE).")
    if url and venue != "url":
        raise click.UsageError(f"unexpected argument {redact_url(url)!r} (only 'record url' "
                               f"takes a URL)")
    planned = build_request(venue, url or url_option, channels=channels, symbols=symbols,
                            params=params, feed=feed, auth=auth, msgpack=msgpack, send=sends,
                            name=name, sim=sim, redact=redact_names)
    options = RecordOptions(duration=duration, max_frames=max_frames, max_retries=max_retries,
                            backoff_initial=backoff, backoff_max=backoff_max,
                            backoff_reset=backoff_reset, watchdog=watchdog,
                            heartbeat=heartbeat, max_message_size=max_message_size,
                            flush_interval=flush_interval, rotate=rotate, spool=spool,
                            spool_min_free=spool_min_free, upload_timeout=upload_timeout,
                            min_free=min_free)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit is a full disk: EFBIG
    ignore_sighup()   # SIGHUP never ends (nor crashes) a recording: SIGTERM does
    from wsrec.replay.relay import RelayOptions, serving
    with serving(serve, planned.venue.name, planned.request, RelayOptions(
            max_lag=serve_max_lag, quiet=quiet, msgpack=planned.venue.name == "alpaca")) as hooks:
        result = record_with_metrics(
            metrics, planned.venue, planned.request, data=data, options=options,
            name=planned.name, args=planned.args,
            progress=_Progress(quiet, max_frames, duration),
            sim=SimOptions(rate=sim_rate) if sim else None, redact=redact_names,
            **hooks)
    _report_recording(result, quiet, as_json)


def _result_json(result) -> dict:
    return {"path": str(result.path), "venue": result.venue, "id": result.session,
            "status": result.status, "error": result.error, "frames_in": result.frames_in,
            "frames_out": result.frames_out, "events": result.events,
            "bytes_in": result.bytes_in, "reconnects": result.reconnects,
            "seconds": round(result.seconds, 3), "stopped_by": result.stopped_by}


def _summary_line(result) -> str:
    return (f"{result.status}: {result.frames_in:,} frames in "
            f"({format_bytes(result.bytes_in)}), {result.frames_out:,} out, "
            f"{result.events:,} events, {result.reconnects} reconnects in "
            f"{format_duration(int(result.seconds * 1e9))} -> "
            f"{result.venue}/{result.session}")


def _report_recording(result, quiet: bool, as_json: bool) -> None:
    """The recording's summary: JSON on stdout, one line on stderr; exit 1 if it failed."""
    if as_json:
        _json(_result_json(result))
    if result.status != "complete":
        upload = f"; {result.upload}" if result.upload else ""
        raise click.ClickException(f"{result.error or 'recording failed'} (session "
                                   f"{result.venue}/{result.session} marked failed){upload}")
    if result.upload:
        raise click.ClickException(result.upload)
    if not quiet:
        log(_summary_line(result), status=result.status, venue=result.venue,
            session=result.session, path=str(result.path), frames_in=result.frames_in,
            frames_out=result.frames_out, events=result.events, bytes_in=result.bytes_in,
            reconnects=result.reconnects, seconds=round(result.seconds, 3),
            stopped_by=result.stopped_by)


#: record options that apply with --config (the others come from the file)
_WITH_CONFIG = {"config", "data", "quiet", "as_json"}


def _record_config(config: Path, data, quiet: bool, as_json: bool) -> None:
    """record --config: every stream of the file; a line per stream at the end (or a
    JSON list of their results); exit 1 if any failed."""
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name not in _WITH_CONFIG and ctx.get_parameter_source(param.name) \
                is click.core.ParameterSource.COMMANDLINE:
            shown = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
            raise click.UsageError(f"--config takes the recording's settings from the file; "
                                   f"leave out {shown} (set it in the file)")
    from wsrec.service.supervisor import run_config
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit is a full disk: EFBIG
    progress = _StreamsProgress(quiet)
    try:
        results = run_config(config, data=data, progress=progress, quiet=quiet)
    finally:
        progress.close()
    if as_json:
        _json([{"stream": r.stream, **(_result_json(r.result) if r.result else dict(
            path=None, venue=None, id=None, status=r.status, error=r.error))}
            for r in results])
    failed = [r for r in results if r.status != "complete" or r.result and r.result.upload]
    if not quiet:
        for r in results:
            line = _summary_line(r.result) if r.result else f"failed: {r.error}"
            error = f" ({r.error})" if r.result and r.error else ""
            upload = f"; {r.result.upload}" if r.result and r.result.upload else ""
            fields = dict(stream=r.stream, status=r.status, error=r.error)
            if r.result:
                fields.update(venue=r.result.venue, session=r.result.session,
                              path=str(r.result.path), frames_in=r.result.frames_in,
                              frames_out=r.result.frames_out, events=r.result.events,
                              bytes_in=r.result.bytes_in, reconnects=r.result.reconnects,
                              seconds=round(r.result.seconds, 3),
                              stopped_by=r.result.stopped_by, upload=r.result.upload)
            log(f"{r.stream}: {line}{error}{upload}", **fields)
    if failed:
        names = ", ".join(dict.fromkeys(r.stream for r in failed))
        raise click.ClickException(f"{len(failed)} of {len(results)} stream recording(s) "
                                   f"failed: {names}")


class _StreamsProgress:
    """record --config on a terminal: one progress line for all streams (frames in all,
    then each stream's count); the supervisor's log lines go above it (wsrec.logs)."""

    def __init__(self, quiet: bool, **bar):
        self.bar = _progress_bar(quiet, **bar)

    def __call__(self, streams: list, final: bool) -> None:
        self.bar(sum(s["frames_in"] for s in streams), ", ".join(
            f"{s['stream']} {s['frames_in']:,}" if s["state"] == "running"
            else f"{s['stream']} {s['state']}" for s in streams))

    def close(self) -> None:
        self.bar.close()


@cli.command("config")
@click.argument("action", type=click.Choice(["check"]), metavar="check")
@click.argument("file", type=click.Path(path_type=Path))
@data_option
@json_option
def config_cmd(action, file, data, as_json):
    """Check a config file of 'wsrec record --config' as the recording does before it
    connects, and print the streams it would record, one line each (secrets redacted).
    Exit 2 naming the line of the first problem. --data is the data root when the file
    names none, as for 'record --config'.

    Example:

    \b
        wsrec config check wsrec.toml
        wsrec config check wsrec.toml --data /srv/wsrec
        wsrec config check wsrec.toml --json | jq '.streams[].name'
    """
    from wsrec.service.config import load_config
    checked = load_config(file, data=data)
    root = str(getattr(checked.data, "url", checked.data))
    if as_json:
        _json({"config": str(file), "data": root,
               "streams": [s.describe() for s in checked.streams]})
        return
    for stream in checked.streams:
        click.echo(stream.summary())
    log(f"ok: {len(checked.streams)} stream(s) into {root}", config=str(file), data=root,
        streams=len(checked.streams))


@cli.command("sim")
@click.argument("venue", type=_LazyChoice("wsrec.sim", "SIMULATORS"), metavar="VENUE",
                shell_complete=completion.simulator_names)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="0 picks a free port.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=_Finite(0.001, 1e6),
              help="Data frames per second (per stream; 0.001 to 1e6; default 20, and "
                   "flow's blocks at mainnet pace, one every 0.8 to 1.3 s).")
@click.option("--drop-every", type=click.IntRange(min=1), metavar="N",
              help="Abort the connection after every N data frames.")
@click.option("--malformed-every", type=click.IntRange(min=1), metavar="N",
              help="Cut every N-th data frame in half.")
@click.option("--stall-after", type=click.IntRange(min=0), metavar="N",
              help="Send nothing more after N data frames.")
@click.option("--error", metavar="CODE",
              help="Answer with the venue's error CODE, or http:STATUS on the upgrade.")
@click.option("--auth-timeout", type=float, default=10.0, show_default=True,
              help="alpaca: seconds to authenticate.")
@click.option("--idle-timeout", type=float, default=60.0, show_default=True,
              help="hyperliquid: close after this long with nothing sent.")
@click.option("--inactivity", type=float, default=60.0, show_default=True,
              help="flow: drop a connection without subscriptions idle this long.")
@click.option("--ping-interval", type=float,
              help="flow/dfuse: server ping interval [default: 9 / 10 s].")
@click.option("--pong-timeout", type=float, default=10.0, show_default=True,
              help="flow: close when a ping is not answered within this.")
@click.option("--max-symbols", type=int, default=30, show_default=True,
              help="alpaca: symbol limit (405 past it).")
@click.option("--max-connections", type=int, default=1, show_default=True,
              help="alpaca: connections per endpoint (406 past it).")
def sim_cmd(venue, host, port, **options):
    """Serve a venue simulator for your own client, until Ctrl-C.

    Prints 'listening on URL' as its first line on stderr: a URL with the venue's
    path, to connect to as is. The paths each venue serves:

    \b
      alpaca       /v2/test (default), /v2/iex, /v2/sip, /v2/delayed_sip,
                   /v1beta3/crypto/us, /v1beta1/indicative, /v1beta1/opra,
                   /v1beta1/news
      dfuse        /v1/stream?token=JWT
      flow         /v1/ws
      hyperliquid  /ws
      vega         /api/v2/stream/STREAM?FILTERS (default: trades)

    Example:

    \b
        wsrec sim alpaca --port 8765 --rate 100
        wsrec sim flow --drop-every 50
    """
    from wsrec.sim import SimOptions, serve_sim
    serve_sim(venue, SimOptions(**options), host, port)


def _columns(rows: dict) -> None:
    """``name  description`` lines, the descriptions in one column however long a name."""
    width = max(map(len, rows), default=0)
    for name, text in rows.items():
        click.echo(f"  {name:<{width}}  {text}")


@cli.command("venues")
@click.argument("venue", required=False, type=_LazyChoice("wsrec.venues", "VENUES"),
                metavar="[VENUE]")
@json_option
def venues_cmd(venue, as_json):
    """List venues: channels, parameters, defaults, credentials, endpoints, and the
    normalized tables their frames yield.

    Example:

    \b
        wsrec venues
        wsrec venues alpaca --json | jq .channels
    """
    from wsrec.venues import VENUES
    infos = [VENUES[name]().describe() for name in ([venue] if venue else VENUES)]
    if as_json:
        _json(infos[0] if venue else infos)
        return
    for info in infos:
        if not venue:
            click.echo(f"{info['name']:<12} {info['title']}")
            continue
        click.echo(f"{info['name']}: {info['title']}")
        click.echo("endpoints:")
        for k, u in info["endpoints"].items():
            click.echo(f"  {k:<12} {u}")
        click.echo("channels:" + (f" (default {', '.join(info['default_channels'])})"
                                  if info["default_channels"] else ""))
        _columns(info["channels"])
        click.echo(f"symbols (--symbols, the symbols column): {info['symbols'] or 'none'}")
        if info["params"]:
            click.echo("parameters (--param KEY=VALUE):")
            _columns(info["params"])
        if info["credentials"]:
            click.echo("credentials (environment):")
            _columns(info["credentials"])
        click.echo("normalized tables (convert/replay --normalize TABLE):"
                   + ("" if info["normalized"] else " none"))
        for table, channels in info["normalized"].items():
            click.echo(f"  {table:<16} from {', '.join(channels)}")
        wd = f"{info['watchdog_s']:g}s" if info["watchdog_s"] else "off"
        hb = f"{info['heartbeat_s']:g}s" if info["heartbeat_s"] else "off"
        click.echo(f"watchdog: {wd}; heartbeat: {hb}")


# -- replay ---------------------------------------------------------------------------------

def filter_options(f):
    """--start/--end, --channels/--symbols, --direction: the same on replay and convert."""
    f = click.option("--direction", default="in", show_default=True,
                     type=click.Choice(["in", "out", "event", "all"]),
                     help="Which rows: received, sent, events, or all.")(f)
    f = list_options(f)
    f = click.option("--end", metavar="TIME",
                     help="Stop before this time (ISO 8601 or +OFFSET).")(f)
    return click.option("--start", metavar="TIME",
                        help="Start at this time: ISO 8601 (naive = UTC) or an offset such "
                             "as +30s from the earliest session's start.")(f)


def _sessions_and_filters(refs, data, start, end, channels, symbols, direction, do_repair,
                          follow: bool = False):
    # a venue name with absolute --start/--end: every session of the venue in the range;
    # followed, the one it names (a venue's newest: the follower goes back from it to --start)
    from wsrec.store.filters import Filters
    from wsrec.store.roots import resolve, resolve_range
    start_ns, end_ns = (_absolute(v) for v in (start, end))
    folders = [resolve(refs[0], data)] if follow else \
        [f for ref in refs for f in resolve_range(ref, data, start_ns, end_ns)]
    sessions = [_open(folder, data, do_repair, warn=False) for folder in folders]
    seen = set()
    for s in sessions:
        if s.path in seen:
            raise click.BadParameter(f"session {s.venue}/{s.id} given twice",
                                     param_hint="SESSION")
        seen.add(s.path)
        if follow:
            pass  # the follow says how it ends
        elif s.live:
            click.echo(f"note: {s.venue}/{s.id} is still being recorded; replaying what is "
                       f"flushed so far", err=True)
        elif s.crashed:
            click.echo(f"note: {s.venue}/{s.id} crashed while recording; replaying what it "
                       f"flushed (run 'wsrec repair' to finish it)", err=True)
    filters = Filters.for_sessions(sessions, start=start, end=end, channels=channels,
                                   symbols=symbols, direction=direction)
    _check_speed(sessions)
    return sessions, filters


def _absolute(value) -> int | None:
    """``--start``/``--end`` as ns when it is an absolute time (an offset, or a bad value
    that the filters then report, is None)."""
    if value is None or is_offset(value):
        return None
    try:
        return parse_time(value)
    except UsageError:
        return None


def normalize_option(f):
    return click.option("--normalize", metavar="TABLE", callback=_parsed_by(_normalized_table),
                        shell_complete=completion.table_names,
                        help="Typed rows instead of frames: trades, quotes, book_changes, "
                             "book_snapshots:DEPTH:INTERVAL, bars, blocks, actions (which "
                             "a venue has: 'wsrec venues VENUE').")(f)


def _normalized_table(text):
    from wsrec.venues.normalize import parse_table
    parse_table(text)
    return text


def read_damaged_option(f):
    return click.option("--read-damaged", is_flag=True,
                        help="Skip the row groups of damaged parts (checksum or size "
                             "mismatch) with a warning for each, instead of stopping.")(f)


def _read_damaged(sessions, read_damaged: bool) -> None:
    """--read-damaged: skip what fails its checks, one warning line per row group."""
    for s in sessions:
        if read_damaged:
            s.damaged = "skip"
        s.warn = lambda message: log(str(message), "warning")


def _check_speed(sessions) -> None:
    """replay --speed: a speed so slow that the sessions' due times would pass int64
    nanoseconds (292 years) is a usage error."""
    ctx = click.get_current_context(silent=True)
    speed = ctx.params.get("speed") if ctx is not None else None
    if speed is None or speed >= 1:
        return
    starts = [s.start_ns for s in sessions if s.start_ns is not None]
    ends = [s.end_ns for s in sessions if s.end_ns is not None]
    if not starts or not ends:
        return
    span = max(ends) - min(starts)
    if span / speed >= 2**63:
        raise click.BadParameter(
            f"{speed:g} is too slow for {format_duration(span)} of recording: the due times "
            f"would pass 292 years; give at least {span / 2**63:.3g}", param_hint="--speed")


@cli.command("replay")
@click.argument("sessions", nargs=-1, required=True, metavar="SESSION...",
                shell_complete=completion.session_refs)
@click.option("--speed", default="1", callback=_parsed_by(_parse_speed), show_default=True,
              help="1 = original timing, 10 (or 10x) = ten times faster, 0.5, or max.")
@filter_options
@click.option("--to", "target", default="stdout", show_default=True, metavar="WHERE",
              help="stdout, ws://HOST:PORT[/path], tcp://HOST:PORT or unix:PATH.")
@click.option("--format", "fmt", type=click.Choice(["raw", "envelope"]), default="raw",
              show_default=True, help="Line format for stdout, tcp and unix.")
@normalize_option
@click.option("--loop", type=click.IntRange(min=0), default=1, show_default=True,
              help="Play this many times (0: forever).")
@click.option("--skip-gaps", is_flag=True, help="Collapse recorded disconnects to nothing.")
@click.option("--stats", is_flag=True, help="Print frames sent and lateness at the end.")
@click.option("--shared-clock", is_flag=True,
              help="Servers: one clock for all clients, as on a live venue.")
@click.option("--no-emulate", is_flag=True,
              help="WebSocket server: stream every recorded frame as is, no venue protocol.")
@click.option("--max-lag", type=_Finite(0, 365 * 86400, min_open=True), default=5.0,
              show_default=True, metavar="SECONDS",
              help="Servers: disconnect a client more than this many seconds behind.")
@click.option("--max-message-size", type=click.IntRange(min=1), default=1 << 20,
              show_default=True, metavar="BYTES",
              help="WebSocket server: close a client that sends a bigger message (1009).")
@click.option("--once", is_flag=True,
              help="Servers: exit after the first client's replay, or when that client "
                   "leaves before it is done.")
@click.option("--follow", is_flag=True,
              help="Keep going as the recorder appends, and on into the sessions that "
                   "continue it (--rotate), until the recording ends; one SESSION (a venue: "
                   "its newest).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@read_damaged_option
@data_option
@repair_option
def replay_cmd(sessions, speed, start, end, channels, symbols, direction, target, fmt,
               normalize, loop, skip_gaps, stats, shared_clock, no_emulate, max_lag,
               max_message_size, once, follow, quiet, read_damaged, data, do_repair):
    """Play sessions back with their original timing, faster, or at full speed.

    To stdout (one line per message, for jq), or as a server a client connects to:
    a WebSocket server that emulates the recorded venue, or TCP / Unix sockets that
    carry lines. Several sessions are merged by time. With --follow, a session being
    recorded is played from its start (or --start) and followed as it grows, like
    'tail -f', until its recorder stops; Ctrl-C or SIGTERM end it (exit 0).

    Example:

    \b
        wsrec replay last --speed max | jq -c .
        wsrec replay alpaca --speed 10 --symbols AAPL --format envelope
        wsrec replay alpaca --to ws://127.0.0.1:8765 --shared-clock
        wsrec replay hyperliquid --normalize trades | jq -c '[.symbol,.price]'
        wsrec replay hyperliquid --follow --speed max | jq -c .
    """
    from wsrec.replay.stdout import ReplayOptions, use_lean_memory_pool
    use_lean_memory_pool()
    if normalize and target != "stdout":
        raise click.UsageError("--normalize plays rows to stdout; leave out --to")
    if normalize and (loop != 1 or skip_gaps):
        raise click.UsageError("--loop and --skip-gaps do not apply to --normalize")
    if follow:
        if len(sessions) != 1:
            raise click.UsageError("--follow plays one SESSION (and those that continue it)")
        if normalize:
            raise click.UsageError("--normalize does not follow a session; leave out --follow")
        if loop != 1 or skip_gaps:
            raise click.UsageError("--loop and --skip-gaps do not apply to --follow")
    picked, filters = _sessions_and_filters(sessions, data, start, end, channels, symbols,
                                            direction, do_repair, follow)
    _read_damaged(picked, read_damaged)
    options = ReplayOptions(speed=speed, format=fmt, loop=loop, skip_gaps=skip_gaps,
                            follow=follow)
    if target == "stdout":
        _replay_to_stdout(picked, filters, options, quiet, stats,
                          _normalized(picked, filters, normalize))
        return
    from wsrec.replay.serve import ServeOptions, serve_replay
    report = serve_replay(picked, filters, options, target, ServeOptions(
        shared_clock=shared_clock, emulate=not no_emulate, max_lag=max_lag,
        max_message_size=max_message_size, once=once, quiet=quiet, stats=stats))
    if stats:
        click.echo(_stats_line(report), err=True)


def _normalized(picked, filters, table):
    """``--normalize TABLE``: the sessions' rows of that table (None without it)."""
    if not table:
        return None
    from wsrec.store.normalized import Normalized
    return Normalized(picked, table, filters)


def _warn_empty(written: int, rows, picked, filters, nothing: str) -> None:
    """The warnings after a replay or conversion: frames of a normalized table (``rows``)
    that could not be mapped, and why nothing came out."""
    from wsrec.replay.stdout import why_empty
    if rows is not None and rows.report():
        log(str(rows.report()), "warning")
    if written:
        return
    why = why_empty(picked, filters) if rows is None else \
        f"no {rows.table} row in {rows.frames:,} frames of its channels" if rows.frames else \
        f"no frame of the channels that carry {rows.table} matches the filters"
    log(f"{nothing}: {why}", "warning")


def _replay_to_stdout(picked, filters, options: ReplayOptions, quiet: bool,
                      stats: bool, rows=None) -> None:
    """replay --to stdout: the lines (or with ``rows``, normalized rows), a progress bar
    on a terminal, the --stats line."""
    from wsrec.replay.stdout import count_frames, replay_to_stream

    def total():
        if options.follow:
            return None
        n = count_frames(picked, filters) if rows is None else rows.count()
        return n * options.loop if options.loop else None

    bar = _progress_bar(quiet, total)
    out = bar.stdout(sys.stdout.buffer)
    lateness = Lateness() if stats else None

    def progress(done, ts):
        if bar.active:   # called for every frame of a paced replay
            bar(done, format_ns(ts)[:23] if ts else None)

    stopped = False
    try:
        if options.follow:
            written, stopped = _follow_to_stdout(picked, filters, options, lateness, progress,
                                                 out)
        elif rows is None:
            written = replay_to_stream(picked, filters, options, out,
                                       lateness=lateness, progress=progress)
        else:
            from wsrec.replay.normalized import replay_normalized
            written = replay_normalized(rows, options, out, lateness=lateness,
                                        progress=progress)
    except BrokenPipeError:
        # the reader went away (| head): that is a normal end
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return
    finally:
        bar.close()
    if not stopped:
        _warn_empty(written, rows, picked, filters, "nothing replayed")
    if stats:
        summary = lateness.summary()
        summary["frames"] = written
        click.echo(_stats_line(summary), err=True)


def _follow_to_stdout(picked, filters, options: ReplayOptions, lateness, progress, out):
    """replay --follow to stdout until the recording ends, or until Ctrl-C or SIGTERM
    (a clean stop, exit 0): (frames written, whether a signal stopped it)."""
    from wsrec.replay.stdout import replay_to_stream
    written = [0]

    def counted(done, ts):
        written[0] = done
        progress(done, ts)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        written[0] = replay_to_stream(picked, filters, options, out,
                                      lateness=lateness, progress=counted)
        return written[0], False
    except KeyboardInterrupt:
        return written[0], True
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stats_line(s: dict) -> str:
    if s.get("p50_ms") is None:
        return f"frames sent: {s['frames']:,}"
    return (f"frames sent: {s['frames']:,}; lateness p50 {s['p50_ms']:.3f} ms, "
            f"p99 {s['p99_ms']:.3f} ms, max {s['max_ms']:.3f} ms, "
            f"last frame {s['last_ms']:.3f} ms")


# -- convert ---------------------------------------------------------------------------------

def _progress_bar(quiet: bool, total=None, **bar):
    """The progress bar of a long command (``wsrec.cli.progress.Bar``): on a terminal
    and without --quiet; ``total`` (a function) is only asked then."""
    from wsrec.cli.progress import Bar
    return Bar(total, quiet=quiet, **bar)


@cli.command("convert")
@click.argument("sessions", nargs=-1, required=True, metavar="SESSION...",
                shell_complete=completion.session_refs)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="jsonl and jsonl.zst (replay's envelope), csv, parquet, arrow (IPC file).")
@click.option("--output", "-o", metavar="FILE|-", help="Where to write [default: stdout].",
              shell_complete=completion.file_path)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--level", type=click.IntRange(1, 22), metavar="N",
              help="zstd level for parquet and jsonl.zst [default: 6 and 3].")
@click.option("--data-as-string", is_flag=True,
              help="jsonl: every data a JSON string (text), so each column has one shape "
                   "(for Polars' read_ndjson, Spark); import reads it back.")
@normalize_option
@filter_options
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@read_damaged_option
@data_option
@repair_option
def convert_cmd(sessions, fmt, output, force, level, data_as_string, normalize, start, end,
                channels, symbols, direction, quiet, read_damaged, data, do_repair):
    """Convert sessions to JSON lines, CSV, Parquet or Arrow, merged by time; or, with
    --normalize, their typed rows of one table (trades, quotes, books, bars, blocks).

    Takes replay's filters. msgpack frames become JSON in the text formats. The
    output file appears only once it is complete.

    Example:

    \b
        wsrec convert alpaca --format csv -o quotes.csv -c quotes
        wsrec convert last --format jsonl.zst -o last.jsonl.zst --direction all
        wsrec convert alpaca vega --format parquet -o both.parquet --level 12
        wsrec convert vega --normalize trades --format parquet -o trades.parquet
    """
    from wsrec.replay.convert import convert
    from wsrec.replay.stdout import count_frames, use_lean_memory_pool
    use_lean_memory_pool()
    picked, filters = _sessions_and_filters(sessions, data, start, end, channels, symbols,
                                            direction, do_repair)
    _read_damaged(picked, read_damaged)
    normalized = _normalized(picked, filters, normalize)
    bar = _progress_bar(quiet, lambda: count_frames(picked, filters) if normalized is None
                        else normalized.count(),
                        unit=" rows" if normalized is None else " frames")
    try:
        rows = convert(picked, filters, fmt, output, force=force, level=level,
                       stdout=bar.stdout(sys.stdout.buffer), progress=bar,
                       data_as_string=data_as_string, normalized=normalized)
    except BrokenPipeError:
        return
    finally:
        bar.close()
    if not quiet and output not in (None, "-"):
        what = "rows" if normalized is None else f"{normalized.table} rows"
        log(f"wrote {rows:,} {what} to {output}")
    _warn_empty(rows, normalized, picked, filters, "no row written")


@cli.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--venue", required=True, help="Venue folder (and classification rules) for "
                                             "the new session.",
              shell_complete=completion.venue_names)
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS),
              help="jsonl (wsrec's envelope), lines ('<timestamp> <message>', optionally "
                   ".gz/.zst) or har [default: detected].")
@click.option("--strict", is_flag=True, help="Fail at the first unreadable line.")
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary on stderr.")
@data_option
@json_option
def import_cmd(file, venue, fmt, strict, quiet, data, as_json):
    """Build a session from another capture: wsrec JSON lines, timestamped lines, or a HAR
    file saved from a browser's developer tools.

    Example:

    \b
        wsrec import capture.har --venue mysite
        wsrec import trades.txt.zst --venue hyperliquid --format lines
        wsrec convert last --format jsonl -o s.jsonl
        wsrec import s.jsonl --venue alpaca
    """
    from wsrec.record.importer import import_file
    bar = _progress_bar(quiet or as_json, unit="B", in_bytes=True)
    try:
        result = import_file(file, venue, data, fmt, strict, progress=bar.of)
    finally:
        bar.close()
    if result.bad:
        shown = ", ".join(map(str, result.bad[:10]))
        more = f" and {len(result.bad) - 10} more" if len(result.bad) > 10 else ""
        log(f"skipped {len(result.bad)} unreadable line(s) of {file}: {shown}{more}",
            "warning")
    if as_json:
        _json({"path": str(result.path), "rows": result.rows, "bad_lines": result.bad})
    elif not quiet:
        log(f"imported {result.rows:,} rows into {result.path}")


def main() -> None:
    _guard_standard_streams()
    code = 0
    try:
        try:
            cli(prog_name="wsrec")
        except SystemExit as done:
            code = done.code
        _flush_stdout()
    except _StdoutGone:  # outside a command (--help | head -c1): a normal end
        pass
    except _StdoutFailed as exc:
        click.echo(f"Error: {_stdout_message(exc)}", err=True)
        code = 1
    sys.exit(code)
