"""The ``wsrec`` command: parses options, makes one library call, prints the result.

Data goes to stdout, messages to stderr. wsrec's own errors become ``Error: ...``
and exit 1; click's usage errors exit 2.
"""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .errors import WsrecError
from .info import details, summary
from .repair import repair as repair_session
from .session import Session
from .store import ENV_DATA, data_root, resolve, session_folders
from .timefmt import format_duration
from .verify import verify as verify_session

__all__ = ["main", "cli"]


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WsrecError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.version_option(__version__, prog_name="wsrec")
def cli():
    """Record WebSocket market-data and blockchain streams byte-exact, and replay them.

    Sessions live under a data root (--data, $WSREC_DATA, default ./wsrec-data), one
    folder per venue and one per session. SESSION arguments accept a session folder, an
    id or unique prefix, 'last', or a venue name (its newest session).
    """


def data_option(f):
    return click.option("--data", metavar="DIR", envvar=ENV_DATA, default=None,
                        help=f"Data root [env {ENV_DATA}; default ./wsrec-data].")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def repair_option(f):
    return click.option("--repair", "do_repair", is_flag=True,
                        help="Repair a crashed session first (see 'wsrec repair').")(f)


def _open(ref: str, data, do_repair: bool = False, warn: bool = True) -> Session:
    folder = resolve(ref, data)
    if do_repair:
        for line in repair_session(folder):
            click.echo(f"repair: {line}", err=True)
    session = Session(folder)
    if not warn:
        pass
    elif session.crashed:
        click.echo(f"warning: {session.venue}/{session.id} crashed while recording; showing "
                   f"what it flushed (run 'wsrec repair' to finish it)", err=True)
    elif session.live:
        click.echo(f"note: {session.venue}/{session.id} is still recording; showing what is "
                   f"flushed so far", err=True)
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
@click.argument("venue", required=False)
@data_option
@json_option
def ls_cmd(venue, data, as_json):
    """List sessions, oldest first.

    Example:

        wsrec ls
        wsrec ls alpaca --json | jq '.[].id'
    """
    rows = []
    for folder in session_folders(data, venue):
        try:
            rows.append(summary(Session(folder)))
        except WsrecError as exc:
            click.echo(f"warning: {exc}", err=True)
            rows.append({"venue": folder.parent.name, "id": folder.name, "path": str(folder),
                         "start": None, "end": None, "duration_ns": None, "frames": None,
                         "bytes": None, "status": "unreadable", "state": "unreadable",
                         "live": False, "crashed": False})
    if as_json:
        _json(rows)
        return
    if not rows:
        where = f"venue {venue!r} under " if venue else ""
        click.echo(f"no sessions for {where}{data_root(data)}", err=True)
        return
    table = [["VENUE", "SESSION", "START", "DURATION", "FRAMES", "SIZE", "STATUS"]]
    for r in rows:
        start = r["start"][:19].replace("T", " ") if r["start"] else "-"
        frames = f"{r['frames']:,}" if r["frames"] is not None else "-"
        table.append([r["venue"], r["id"], start, format_duration(r["duration_ns"]), frames,
                      format_bytes(r["bytes"]), r["state"]])
    click.echo(_table(table, right={3, 4, 5}))


@cli.command("info")
@click.argument("session")
@data_option
@json_option
@repair_option
def info_cmd(session, data, as_json, do_repair):
    """Show what a session holds: frames, bytes, time span, connections, gaps,
    counts by channel and symbol.

    Example:

        wsrec info last
        wsrec info alpaca --json | jq .symbols
    """
    d = details(_open(session, data, do_repair))
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
    for c in d["connections"]:
        closed = c.get("closed") or "open"
        code = f" code {c['code']}" if "code" in c else ""
        lines.append(("", f"conn {c['conn']}: {c['opened']} .. {closed}{code}"))
    lines.append(("channels", _counts(d["channels"])))
    lines.append(("symbols", _counts(d["symbols"])))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key.ljust(width)}  {value}")


def _counts(counts: dict, limit: int = 12) -> str:
    if not counts:
        return "-"
    items = [f"{k} {v:,}" for k, v in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(items) + (f", ... ({more} more)" if more > 0 else "")


@cli.command("verify")
@click.argument("session")
@data_option
@json_option
@repair_option
def verify_cmd(session, data, as_json, do_repair):
    """Check a session end to end; exit 1 naming every problem, 0 when sound.

    Checks part checksums, row counts, schema and decoding, seq continuity,
    monotonic mono_ns, and crash leftovers. Writes nothing (unless --repair).

    Example:

        wsrec verify last && echo sound
    """
    s = _open(session, data, do_repair, warn=False)  # verify reports the state itself
    problems = verify_session(s)
    if as_json:
        _json({"venue": s.venue, "id": s.id, "path": str(s.path), "state": s.state,
               "ok": not problems, "problems": problems})
        if problems:
            sys.exit(1)
        return
    for line in problems:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{s.venue}/{s.id}: {len(problems)} problem(s)")
    note = " (live: still recording)" if s.live else ""
    click.echo(f"ok: {s.venue}/{s.id}, {s.rows():,} rows{note}")


@cli.command("repair")
@click.argument("session")
@data_option
def repair_cmd(session, data):
    """Rebuild a crashed session's open part from its journal and mark it recovered.

    A sound session is left untouched. Fails if a recorder still holds the session.

    Example:

        wsrec repair last && wsrec verify last
    """
    folder = resolve(session, data)
    actions = repair_session(folder)
    for line in actions:
        click.echo(line)
    if not actions:
        click.echo("nothing to repair", err=True)


def main() -> None:
    cli(prog_name="wsrec")
