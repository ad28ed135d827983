"""Shell completion of option and argument values, attached with ``shell_complete=``.

SESSION arguments complete to ``last``, the venues that have sessions, session ids (newest
first), ``venue/id``, and folders; ``-c/--channels`` and ``-s/--symbols`` to the channels of
the venue on the command line (``record VENUE``, or the venue of the SESSIONs given) and
the symbols its sessions were recorded with, the item after the last comma of a list.

Everything is read from the data root of the same command line (``--data``, else
``$WSREC_DATA``, else ``./wsrec-data``) by listing folders: no pyarrow, no parquet, so
completion stays fast (tests/cli/test_startup.py). The one file read is a session's
``session.json``, for the symbols, and only for the newest few sessions. A bucket is not
contacted (no items), and a function here never raises: a damaged root completes nothing.
"""

from __future__ import annotations

import functools
import json
import os

from click.shell_completion import CompletionItem

from wsrec.store.layout import parse_date_dir, parse_rel, parse_venue_dir, venue_of

__all__ = ["session_refs", "session_venues", "channel_list", "symbol_list", "table_names",
           "simulator_names", "venue_names", "dir_path", "file_path", "ENV_DATA",
           "DEFAULT_DATA", "MANIFESTS_READ"]

ENV_DATA = "WSREC_DATA"          # wsrec.store.location's, checked by the tests
DEFAULT_DATA = "wsrec-data"
MANIFESTS_READ = 20              # the newest sessions whose symbols are offered
_MANIFEST = "session.json"
_MANIFEST_LIMIT = 1 << 20        # bigger manifests are skipped, not read


def _quiet(complete):
    """``complete`` returning [] instead of raising: completion must never fail."""
    @functools.wraps(complete)
    def safe(ctx, param, incomplete):
        try:
            return complete(ctx, param, incomplete)
        except Exception:  # noqa: BLE001 - a damaged root (or anything) completes nothing
            return []
    return safe


def _root(ctx) -> str | None:
    """The local data root of the command line (None for a bucket)."""
    data = ctx.params.get("data") if ctx is not None else None
    text = data if isinstance(data, str) and data else \
        os.environ.get(ENV_DATA) or DEFAULT_DATA
    if text.startswith("file://"):
        return text[len("file://"):]
    return None if "://" in text else os.path.expanduser(text)


def _dirs(path: str) -> list[str]:
    """The names of the folders in ``path``, hidden ones left out; [] when it can't be
    listed."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if not e.name.startswith(".") and _is_dir(e)]
    except OSError:
        return []


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _sessions(root: str | None) -> list[tuple[str, str, str]]:
    """``(id, venue, folder)`` of every session folder under ``root``, oldest first, from
    folder names alone (both layouts of ``wsrec.store.layout``)."""
    if root is None:
        return []
    found = []
    for top in _dirs(root):
        venue = parse_venue_dir(top)
        if venue is None:
            rels = [f"{top}/{sid}" for sid in _dirs(os.path.join(root, top))]
        else:
            rels = [f"{top}/{day}/{sid}" for day in _dirs(os.path.join(root, top))
                    if parse_date_dir(day) for sid in _dirs(os.path.join(root, top, day))]
        for rel in rels:
            where = parse_rel(rel)
            if where is not None:
                found.append((where.session, where.venue, os.path.join(root, rel)))
    return sorted(found)


def _is_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or os.sep in ref and os.path.isdir(
        os.path.expanduser(os.path.dirname(ref)))


def _items(values, incomplete: str, given=()) -> list[CompletionItem]:
    return [CompletionItem(v) for v in dict.fromkeys(values)
            if v.startswith(incomplete) and v not in given]


@_quiet
def session_refs(ctx, param, incomplete: str) -> list[CompletionItem]:
    """SESSION: ``last``, venues with sessions, ids and ``venue/id`` (newest first) that
    start with ``incomplete``, leaving out those given before; a folder path (the shell
    completes it) when it looks like one or nothing else matches."""
    sessions = _sessions(_root(ctx))[::-1]
    venues = sorted({venue for _, venue, _ in sessions})
    given = _positional(ctx, param.name)
    venue, slash, prefix = incomplete.partition("/")
    if slash and venue in venues:
        items = _items((f"{venue}/{sid}" for sid, v, _ in sessions if v == venue),
                       incomplete, given)
    elif _is_path(incomplete):
        items = []
    else:
        items = _items(["last"] * bool(sessions) + venues + [sid for sid, _, _ in sessions],
                       incomplete, given)
    return items or [CompletionItem(incomplete, type="dir")]


def _folders_of(ref: str, sessions: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(venue, folder)`` of the sessions ``ref`` names, as ``wsrec.store.roots.resolve``
    tries it (a path, ``last``, a venue, ``venue/prefix``, an id or prefix); a venue
    names all of its sessions, newest first."""
    path = os.path.expanduser(ref)
    if os.path.isfile(os.path.join(path, _MANIFEST)) or os.sep in ref and os.path.isdir(path):
        return [(venue_of(os.path.abspath(path)), path)]
    newest = sessions[::-1]
    if ref == "last":
        return [(v, f) for _, v, f in newest[:1]]
    if "/" not in ref and any(v == ref for _, v, _ in newest):
        return [(v, f) for _, v, f in newest if v == ref]
    venue, _, prefix = ref.rpartition("/")
    mine = [(sid, v, f) for sid, v, f in newest if not venue or v == venue]
    return [(v, f) for sid, v, f in mine if sid == prefix] or \
        [(v, f) for sid, v, f in mine if sid.startswith(prefix)]


def _chosen(ctx) -> list[tuple[str, str]]:
    """``(venue, folder)`` of the sessions whose channels and symbols to offer, newest
    first: ``record``'s VENUE's sessions, else those of the SESSIONs given, else all."""
    sessions = _sessions(_root(ctx))
    if ctx.command.name == "record":
        venue = _positional(ctx, "venue")
        venue = venue[0] if venue else None
        return [(v, f) for _, v, f in sessions[::-1] if v == venue] or \
            [(venue, "")] * isinstance(venue, str)
    refs = _positional(ctx, "sessions")
    if not refs:
        return [(v, f) for _, v, f in sessions[::-1]]
    return [pair for ref in refs for pair in _folders_of(ref, sessions)]


def _positional(ctx, name: str) -> tuple:
    """The values of argument ``name``. Completing an option's value, click stops parsing
    at that option, before the arguments get their values: they are then in
    ``ctx.args`` (the first of them, for ``record``'s VENUE)."""
    value = ctx.params.get(name)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)) and value:
        return tuple(value)
    return tuple(a for a in ctx.args if isinstance(a, str))


def session_venues(ctx) -> list[str]:
    """The venues ``-c``/``-s`` complete for, by name (known to wsrec or not)."""
    return list(dict.fromkeys(v for v, _ in _chosen(ctx)))


def _list_items(values, incomplete: str) -> list[CompletionItem]:
    """A comma list: the values that can follow its last comma, with the items before."""
    head, comma, last = incomplete.rpartition(",")
    before = set(head.split(",")) if comma else set()
    return [CompletionItem(head + comma + v) for v in dict.fromkeys(values)
            if v.startswith(last) and v not in before]


@_quiet
def channel_list(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``-c/--channels``: the channels of the venue(s), in the venue's order."""
    from wsrec.venues import VENUES
    names = [c for v in session_venues(ctx) if v in VENUES for c in VENUES[v].channels]
    return _list_items(names, incomplete)


@_quiet
def symbol_list(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``-s/--symbols``: the symbols the newest sessions of the venue(s) were recorded
    with (their manifests' ``args.symbols``); for ``record``, then the venue's
    ``example_symbols`` (a replay filter offers only what its sessions hold)."""
    from wsrec.venues import VENUES
    chosen = _chosen(ctx)
    folders = [f for _, f in chosen if f][:MANIFESTS_READ]
    known = [s for v in session_venues(ctx) if v in VENUES
             for s in VENUES[v].example_symbols] if ctx.command.name == "record" else []
    return _list_items([*(s for f in folders for s in _recorded_symbols(f)), *known],
                       incomplete)


def _recorded_symbols(folder: str) -> list[str]:
    try:
        with open(os.path.join(folder, _MANIFEST), "rb") as f:
            text = f.read(_MANIFEST_LIMIT + 1)
        if len(text) > _MANIFEST_LIMIT:
            return []
        symbols = json.loads(text).get("args", {}).get("symbols") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in symbols if isinstance(s, str) and s] if isinstance(symbols, list) else []


@_quiet
def table_names(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``--normalize``: the normalized tables the venue(s) of the sessions yield."""
    from wsrec.venues import VENUES
    from wsrec.venues.tables import tables
    return _items([t for v in session_venues(ctx) if v in VENUES for t in tables(VENUES[v])],
                  incomplete)


@_quiet
def simulator_names(ctx, param, incomplete: str) -> list[CompletionItem]:
    """``sim VENUE``: the venues that ``wsrec.sim`` has a module for, found without
    importing it (it loads asyncio and websockets)."""
    import importlib.util
    import pkgutil

    from wsrec.venues import VENUES
    spec = importlib.util.find_spec("wsrec.sim")
    modules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations or [])}
    return _items(sorted(modules & set(VENUES)), incomplete)


@_quiet
def venue_names(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A venue folder (``ls VENUE``, ``prune --venue``): the venues with sessions; for
    ``import --venue`` also the venues wsrec knows."""
    names = {v for _, v, _ in _sessions(_root(ctx))}
    if ctx.command.name == "import":
        from wsrec.venues import VENUES
        names |= set(VENUES)
    return _items(sorted(names), incomplete)


def dir_path(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A folder (``--data``, ``--spool``): the shell completes it."""
    return [CompletionItem(incomplete, type="dir")]


def file_path(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A file (``-o/--output``): the shell completes it."""
    return [CompletionItem(incomplete, type="file")]
