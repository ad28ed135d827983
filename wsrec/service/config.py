"""The service's config file: many streams, one process (``wsrec record --config``).

A TOML file (read with the standard library's ``tomllib``): settings for the whole
process at the top, defaults for every stream beside them, then one ``[[stream]]`` table
per stream::

    data = "wsrec-data"             # the data root (relative: to this file's folder)
    rotate = "1d"                   # a default for every stream

    [[stream]]
    name = "hl"                     # unique: the stream's label and session folder
    venue = "hyperliquid"
    symbols = ["BTC", "ETH"]
    channels = "trades,l2Book"

``load_config`` checks the whole file before anything connects: every key known (a
did-you-mean for one that is not), every value as ``wsrec record`` checks its options
(the same names with ``_`` for ``-``), every stream through ``build_request``, its
venue's ``streams`` (channels, parameters, credentials) and ``check_options``, names
unique, ``serve`` targets unique across the streams (the same port, or Unix socket
path, twice could not listen; port 0 picks a free one each time). The first problem
is a ``UsageError`` that names the file, the line and the stream:
``wsrec.toml:12: [[stream]] "hl": hyperliquid: unknown channel(s) foo (...)``.
TOML syntax errors carry tomllib's line and column.

Secrets stay out of the file: ``env`` maps a venue's credential variables to other
environment variables (two Alpaca accounts in one process), and a parameter named
``NAME_env`` takes parameter ``NAME`` from the environment variable it names. What is
read that way is redacted like any credential (``StreamConfig.describe``, the
recorder's manifest, rows and messages).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from wsrec.errors import UsageError
from wsrec.lists import split_list
from wsrec.record.recorder import MIN_HEARTBEAT, RecordOptions, check_options
from wsrec.record.request import RecordRequest, build_request
from wsrec.record.units import bounded, parse_seconds, parse_size
from wsrec.replay.serve import parse_target
from wsrec.secrets import redact, redact_url
from wsrec.service.metrics import parse_address
from wsrec.sim import SimOptions, get_simulator
from wsrec.store.location import DEFAULT_DATA, is_remote_url, parse_endpoint
from wsrec.store.roots import check_root
from wsrec.store.writer import check_name
from wsrec.timefmt import parse_duration
from wsrec.urls import url_problem
from wsrec.venues import VENUES, get_venue

__all__ = ["ServiceConfig", "StreamConfig", "load_config", "parse_config", "GLOBAL_KEYS",
           "STREAM_KEYS", "DEFAULT_KEYS", "LOG_FORMATS"]

LOG_FORMATS = ("text", "json")

#: keys of a ``[[stream]]`` table only
STREAM_KEYS = ("name", "venue", "url", "channels", "symbols", "params", "feed", "auth",
               "msgpack", "send", "folder", "env", "serve")
#: keys of the top level only: the process's settings (a change needs a restart)
GLOBAL_KEYS = ("data", "spool", "s3_endpoint", "metrics", "log_format")
#: keys of either: at the top level, the default of every stream
DEFAULT_KEYS = ("rotate", "sim", "redact", "duration", "max_frames", "max_retries", "backoff",
                "backoff_max", "backoff_reset", "watchdog", "heartbeat", "flush_interval",
                "max_message_size", "spool_min_free", "upload_timeout", "min_free",
                "serve_max_lag")

#: seconds-valued options: (low, high, low_open), the bounds of ``wsrec record``'s options
SECONDS = {"backoff": (0, 86400, True), "backoff_max": (0, 86400, True),
           "backoff_reset": (0, 30 * 86400, True), "watchdog": (0, 30 * 86400, False),
           "heartbeat": (0, 86400, False), "flush_interval": (0.01, 60.0, False),
           "upload_timeout": (0, 86400, False), "serve_max_lag": (0, 365 * 86400, True)}
#: byte-valued options: (low, high)
SIZES = {"max_message_size": (1024, 2 << 30), "spool_min_free": (0, 1 << 62),
         "min_free": (0, 1 << 62)}
ROTATIONS = ("1h", "1d", "never")
#: the simulator's options a ``sim`` table takes
SIM_KEYS = tuple(f.name for f in fields(SimOptions) if f.name not in ("credentials", "extra"))
_SIM_DEFAULTS = SimOptions()
#: config key -> RecordOptions field
_OPTION_FIELDS = {"duration": "duration", "max_frames": "max_frames",
                  "max_retries": "max_retries", "backoff": "backoff_initial",
                  "backoff_max": "backoff_max", "backoff_reset": "backoff_reset",
                  "watchdog": "watchdog", "heartbeat": "heartbeat",
                  "flush_interval": "flush_interval", "max_message_size": "max_message_size",
                  "rotate": "rotate", "spool_min_free": "spool_min_free",
                  "upload_timeout": "upload_timeout", "min_free": "min_free"}
_OPTION_KEYS = {field: key for key, field in _OPTION_FIELDS.items()}


@dataclass
class StreamConfig:
    """One ``[[stream]]``, checked, with the file's defaults applied. Two are equal when
    they record the same thing the same way (``line`` aside): a reload leaves such a
    stream alone."""
    name: str                          # the stream's label (unique) and default folder
    venue: str                         # a venue of ``wsrec venues``, or "url"
    url: str | None = None             # the url venue's endpoint, or another venue's
    channels: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    params: dict = field(default_factory=dict, repr=False)   # literal venue parameters
    params_env: dict = field(default_factory=dict)   # parameter -> environment variable
    env: dict = field(default_factory=dict)          # venue credential -> env variable
    feed: str | None = None
    auth: str | None = None
    msgpack: bool = False
    send: tuple[str, ...] = ()
    folder: str = ""                   # the session's venue folder (default: name)
    sim: SimOptions | None = None      # record from the built-in simulator
    options: RecordOptions = field(default_factory=RecordOptions)
    redact: tuple[str, ...] = ()
    serve: tuple[str, ...] = ()        # live relay targets (``wsrec.replay.relay``)
    serve_max_lag: float = 5.0         # seconds behind before a relay client is dropped
    line: int = field(default=0, compare=False)   # of its ``[[stream]]`` in the file

    def request(self, environ: Mapping[str, str] | None = None) -> RecordRequest:
        """The recording this stream asks for (``build_request``), its secrets taken
        from ``environ`` (default ``os.environ``); UsageError for a variable not set."""
        environ = os.environ if environ is None else environ
        params = dict(self.params)
        params.update({p: _from_env(environ, var, f"params.{p}_env")
                       for p, var in self.params_env.items()})
        planned = build_request(self.venue, self.url, channels=list(self.channels),
                                symbols=list(self.symbols), params=params, feed=self.feed,
                                auth=self.auth, msgpack=self.msgpack, send=list(self.send),
                                name=self.folder, sim=self.sim is not None,
                                redact=self.redacted_names)
        credentials = {cred: _from_env(environ, var, f"env.{cred}")
                       for cred, var in self.env.items()}
        planned.request.env = {**environ, **credentials}
        return planned

    @property
    def redacted_names(self) -> list[str]:
        """``redact`` and the parameters read from the environment: secret by name."""
        return [*self.redact, *(p for p in self.params_env if p not in self.redact)]

    def describe(self, environ: Mapping[str, str] | None = None) -> dict:
        """What the stream records, for ``wsrec config check``: secrets redacted (those
        the venue reads, those read from the environment, and parameters by name)."""
        planned = _planned(self, os.environ if environ is None else environ)
        secrets = [s for st in planned.venue.streams(planned.request) for s in st.secrets()]
        secrets += [planned.request.params[p] for p in self.params_env]
        shown = {"name": self.name, "venue": self.venue, "url": self.url,
                 "channels": list(self.channels), "symbols": list(self.symbols),
                 "params": {**self.params, **{p: "***" for p in self.params_env}},
                 "folder": self.folder,
                 "sim": None if self.sim is None else
                 {k: getattr(self.sim, k) for k in SIM_KEYS if k == "rate" or
                  getattr(self.sim, k) != getattr(_SIM_DEFAULTS, k)},
                 "rotate": self.options.rotate, "duration": self.options.duration,
                 "max_frames": self.options.max_frames, "serve": list(self.serve),
                 "line": self.line}
        if self.feed:
            shown["params"]["feed"] = self.feed
        if self.send:
            shown["send"] = list(self.send)
        shown = redact(shown, names=self.redacted_names, values=[s for s in secrets if s])
        return {**shown, "env": dict(self.env)}   # variables' names: no secret

    def summary(self, environ: Mapping[str, str] | None = None) -> str:
        """One line: name, venue, what it subscribes to, where it goes (redacted)."""
        d = self.describe(environ)
        parts = [d["venue"] + (f" {redact_url(d['url'])}" if d["url"] else "")]
        parts.append("channels " + (",".join(d["channels"]) or "(the venue's default)"))
        if d["symbols"]:
            parts.append("symbols " + ",".join(d["symbols"]))
        if d["params"]:
            parts.append("params " + ",".join(f"{k}={v}" for k, v in d["params"].items()))
        parts.append(f"folder {d['folder']}")
        parts.append(f"rotate {d['rotate']}")
        if d["sim"]:
            rate = d["sim"]["rate"]
            parts.append("sim at the venue's pace" if rate is None else f"sim at {rate:g}/s")
        if d["serve"]:
            parts.append("serve " + ",".join(d["serve"]))
        return f"{self.name}: " + ", ".join(parts)

    def changes(self, other: "StreamConfig") -> list[str]:
        """The file's keys in which ``other`` differs."""
        out = []
        for f in fields(self):
            if not f.compare:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "options":
                out += [_OPTION_KEYS.get(o.name, o.name) for o in fields(a)
                        if getattr(a, o.name) != getattr(b, o.name)]
            elif a != b:
                out.append("params" if f.name == "params_env" else f.name)
        return list(dict.fromkeys(out))


@dataclass
class ServiceConfig:
    """A checked config file: the process's settings and its streams, in file order."""
    path: Path
    data: object                       # the data root: a folder, s3:// or gs:// URL, Root
    streams: list[StreamConfig]
    spool: str | None = None
    s3_endpoint: str | None = None
    metrics: str | None = None         # host:port of the Prometheus endpoint
    log_format: str = "text"

    def settings(self) -> dict:
        """The settings a running process can't change (a reload says so)."""
        return {k: getattr(self, k) for k in GLOBAL_KEYS}

    def stream(self, name: str) -> StreamConfig | None:
        return next((s for s in self.streams if s.name == name), None)


def load_config(path, *, data=None, environ: Mapping[str, str] | None = None
                ) -> ServiceConfig:
    """Read and check the config file at ``path`` (see the module's docstring).

    ``data``: the data root when the file names none (``--data``, ``$WSREC_DATA``;
    default ./wsrec-data). ``environ``: where ``env`` and ``*_env`` are looked up
    (default ``os.environ``). UsageError naming the file (and line) for any problem.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror or exc}",
                         param="config") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})", param="config") \
            from None
    return parse_config(text, path, data=data, environ=environ)


def parse_config(text: str, path="wsrec.toml", *, data=None,
                 environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """``load_config`` on the text of a file (``path`` names it in errors and anchors
    its relative paths)."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if m:
            message = f"{m.group(1)}:{m.group(2)}: {message[:m.start()]}"
        raise UsageError(f"{path}:{message if m else ' ' + message}", param="config") \
            from None
    return _Parser(text, path, environ).parse(doc, data)


def _from_env(environ, var: str, what: str) -> str:
    value = environ.get(var)
    if not value:
        raise UsageError(f"{what}: environment variable {var} is not set", param=what)
    return value


# -- checking --------------------------------------------------------------------------------

class _Lines:
    """Where things are in the file's text (tomllib keeps no positions): the line of
    each ``[[stream]]`` header, and of a key within a range of lines."""

    _HEADER = re.compile(r"""^\s*\[\[\s*(?:stream|"stream"|'stream')\s*\]\]""")
    _TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str):
        self.lines = []   # the lines outside multi-line strings (others blanked)
        inside = None
        for line in text.splitlines():
            shown = "" if inside else line
            for quote in ('"""', "'''"):
                if inside in (None, quote):
                    if line.count(quote) % 2:
                        inside = None if inside else quote
            self.lines.append(shown)
        self.headers = [i + 1 for i, line in enumerate(self.lines) if self._HEADER.match(line)]
        tables = [i + 1 for i, line in enumerate(self.lines) if self._TABLE.match(line)]
        self.top_end = tables[0] if tables else len(self.lines) + 1

    def stream_range(self, index: int, count: int) -> tuple[int, int] | None:
        """Lines [first, end) of the ``index``-th stream; None when the streams were not
        written as ``[[stream]]`` tables."""
        if len(self.headers) != count:
            return None
        first = self.headers[index]
        end = self.headers[index + 1] if index + 1 < count else len(self.lines) + 1
        for n in range(first + 1, end):   # a top-level table ends it
            line = self.lines[n - 1]
            if self._TABLE.match(line) and not re.match(r"^\s*\[\s*stream\s*\.", line):
                return first, n
        return first, end

    def key(self, key: str, first: int, end: int) -> int | None:
        """The line of ``key = ...`` (or ``key.sub = ...``, ``[stream.key]``) in
        [first, end)."""
        k = re.escape(key)
        pattern = re.compile(rf"""^\s*(?:{k}|"{k}"|'{k}')\s*[=.]|^\s*\[\s*stream\s*\.\s*{k}\s*\]""")
        for n in range(first, min(end, len(self.lines) + 1)):
            if pattern.match(self.lines[n - 1]):
                return n
        return None


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# message words that point at the key a venue's error is about
_HINTS = (("channel", "channels"), ("symbol", "symbols"), ("parameter", "params"),
          ("--param", "params"), ("feed", "feed"), ("URL", "url"), ("url", "url"),
          ("simulator", "sim"), ("credential", "env"))


class _Parser:
    def __init__(self, text: str, path: Path, environ):
        self.text = text
        self.path = path
        self.environ = environ
        self.where = _Lines(text)

    # -- errors ------------------------------------------------------------------------------

    def fail(self, message: str, line: int | None, stream: str | None = None):
        at = f"{self.path}:{line}:" if line else f"{self.path}:"
        raise UsageError(f"{at} {stream + ': ' if stream else ''}{message}", param="config")

    def global_line(self, key: str) -> int | None:
        return self.where.key(key, 1, self.where.top_end)

    # -- the file ------------------------------------------------------------------------

    def parse(self, doc: dict, data) -> ServiceConfig:
        streams_doc = doc.get("stream")
        known = GLOBAL_KEYS + DEFAULT_KEYS + ("stream",)
        for key in doc:
            if key not in known:
                line = self.global_line(key) or self._table_line(key)
                hint = _did_you_mean(key, known)
                if key in STREAM_KEYS:
                    hint = f"; {key!r} goes in a [[stream]] table"
                self.fail(f"unknown key {key!r}{hint}", line)
        settings = {}
        for key in GLOBAL_KEYS:
            if key in doc:
                try:
                    settings[key] = _GLOBAL_PARSERS[key](doc[key], self.path)
                except UsageError as exc:
                    self.fail(_prefixed(key, exc), self.global_line(key))
        defaults = {}
        for key in DEFAULT_KEYS:
            if key in doc:
                try:
                    defaults[key] = _DEFAULT_PARSERS[key](doc[key], key)
                except UsageError as exc:
                    self.fail(_prefixed(key, exc), self.global_line(key))
        if streams_doc is None:
            self.fail("no [[stream]] table: add one per stream to record", None)
        if not isinstance(streams_doc, list) or not all(isinstance(s, dict)
                                                        for s in streams_doc):
            self.fail("'stream' must be [[stream]] tables",
                      self.global_line("stream") or self._table_line("stream"))
        if not streams_doc:
            self.fail("no [[stream]] table: add one per stream to record", None)
        streams, seen, served = [], {}, []
        for index, table in enumerate(streams_doc):
            stream = self.stream(index, len(streams_doc), table, defaults, settings, seen,
                                 served)
            seen[stream.name] = stream.line
            streams.append(stream)
        root = settings.get("data")
        if root is None:
            root = data if data is not None and data != "" else DEFAULT_DATA
        return ServiceConfig(self.path, root, streams, spool=settings.get("spool"),
                             s3_endpoint=settings.get("s3_endpoint"),
                             metrics=settings.get("metrics"),
                             log_format=settings.get("log_format", "text"))

    def _table_line(self, key: str) -> int | None:
        pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(key)}\s*[\].]")
        return next((n for n, line in enumerate(self.where.lines, 1) if pattern.match(line)),
                    None)

    # -- one stream ----------------------------------------------------------------------

    def stream(self, index: int, count: int, table: dict, defaults: dict, settings: dict,
               seen: dict, served: list | None = None) -> StreamConfig:
        """One ``[[stream]]`` table, checked; ``seen``: the names before it (line of
        each); ``served``: the ``serve`` targets before it (what each listens on, the
        target, the line of its stream), its own added."""
        span = self.where.stream_range(index, count)
        header = span[0] if span else self.global_line("stream")
        name = table.get("name")
        label = f"[[stream]] {json.dumps(name)}" if isinstance(name, str) and name \
            else f"[[stream]] #{index + 1}"

        def line_of(key):
            found = self.where.key(key, span[0] + 1, span[1]) if span and key else None
            return found or header

        def fail(message, key=None):
            self.fail(message, line_of(key), label)

        for key in table:
            if key not in STREAM_KEYS + DEFAULT_KEYS:
                hint = _did_you_mean(key, STREAM_KEYS + DEFAULT_KEYS)
                if key in GLOBAL_KEYS:
                    hint = f"; {key!r} is a setting of the whole file (put it at the top)"
                fail(f"unknown key {key!r}{hint}", key)
        if not isinstance(name, str) or not name:
            fail("every [[stream]] needs a name (name = \"...\"): its label and session "
                 "folder", "name" if "name" in table else None)
        if name in seen:
            fail(f"the name is already used by the stream at line {seen[name]}; names "
                 f"must be unique", "name")
        values = dict(defaults)
        for key, value in table.items():
            parse = _STREAM_PARSERS.get(key) or _DEFAULT_PARSERS[key]
            try:
                values[key] = parse(value, key)
            except UsageError as exc:
                fail(_prefixed(key, exc), key)
        venue = values.get("venue")
        if venue is None:
            if "url" not in values:
                fail("give venue = \"...\" (see 'wsrec venues'), or url = \"wss://...\" to "
                     "record any endpoint")
            venue = "url"
        options = {f: values[k] for k, f in _OPTION_FIELDS.items() if k in values}
        options.setdefault("rotate", "1d")
        sim = values.get("sim")
        stream = StreamConfig(
            name=name, venue=venue, url=values.get("url"),
            channels=tuple(values.get("channels", ())),
            symbols=tuple(values.get("symbols", ())),
            params=values.get("params", ({}, {}))[0],
            params_env=values.get("params", ({}, {}))[1], env=values.get("env", {}),
            feed=values.get("feed"), auth=values.get("auth"),
            msgpack=values.get("msgpack", False), send=tuple(values.get("send", ())),
            folder=values.get("folder", name),
            sim=None if sim is None or sim is False else sim,
            options=RecordOptions(spool=settings.get("spool"),
                                  s3_endpoint=settings.get("s3_endpoint"), **options),
            redact=tuple(values.get("redact", ())), serve=tuple(values.get("serve", ())),
            serve_max_lag=values.get("serve_max_lag", 5.0),
            line=header or 0)
        try:
            _check_stream(stream, self.environ)
        except UsageError as exc:
            key = _key_of(exc, table)
            fail(_in_config_terms(str(exc)), key)
        served = [] if served is None else served
        mine: list = []
        for target in stream.serve:
            where = _listens(target)
            for other, other_target, other_line in mine + served:
                if where is not None and _clash(where, other):
                    said = "served twice in this stream" if other_line == -1 else \
                        f"already served by the stream at line {other_line}"
                    also = f" (as {other_target})" if other_target != target else ""
                    fail(f"serve: {target} is {said}{also}: the second could not listen; "
                         f"give each its own port or path (port 0 picks a free one)", "serve")
            mine.append((where, target, -1))
        served += [(where, target, stream.line) for where, target, _ in mine]
        return stream


_ANY_HOST = ("0.0.0.0", "::", "")


def _listens(target: str) -> tuple | None:
    """What a ``serve`` target listens on: ("unix", path) or ("port", port, host); None
    for port 0 (a free one each time)."""
    kind, host, port = parse_target(target)
    if kind == "unix":
        return "unix", os.path.normpath(os.path.abspath(os.path.expanduser(port)))
    if port == 0:
        return None
    host = str(host).strip("[]").lower()
    return "port", port, "127.0.0.1" if host == "localhost" else host


def _clash(a: tuple, b: tuple | None) -> bool:
    """Two ``_listens`` that can't both listen: the same path, or the same port on the
    same host or where one of them listens on every host."""
    if b is None or a[:2] != b[:2]:
        return False
    return a[0] == "unix" or a[2] == b[2] or a[2] in _ANY_HOST or b[2] in _ANY_HOST


def _check_stream(stream: StreamConfig, environ) -> None:
    """Everything ``wsrec record`` checks before it connects, for one stream."""
    if stream.env:
        known = get_venue(stream.venue).credentials
        for cred in stream.env:
            if cred not in known:
                raise UsageError(f"env: {stream.venue} reads no credential {cred!r} "
                                 f"(it reads {', '.join(known) or 'none'})"
                                 f"{_did_you_mean(cred, known)}", param="env")
    planned = _planned(stream, environ)
    for st in planned.venue.streams(planned.request):
        problem = url_problem(st.url)
        if problem:
            raise UsageError(f"url: invalid URL {redact_url(st.url)!r}: {problem}",
                             param="url")
    check_options(stream.options)


def _planned(stream: StreamConfig, environ) -> RecordRequest:
    """``stream.request``, and for a simulator stream what the simulator will give it:
    a local URL and the credentials it accepts (its fault switches checked)."""
    planned = stream.request(environ)
    if stream.sim is not None:
        try:
            simulator = get_simulator(stream.venue, stream.sim)
        except UsageError as exc:
            raise UsageError(f"sim: {exc}", param="sim") from None
        planned.request.url = "ws://127.0.0.1:1/"
        planned.request.env = {**planned.request.env, **simulator.credentials()}
    return planned


def _key_of(exc: UsageError, table: dict) -> str | None:
    """The stream's key an error is about: the one it names, else a word of it."""
    if isinstance(exc.param, str):
        key = {"sends": "send", "redact_names": "redact"}.get(exc.param, exc.param)
        key = key.split(".")[0]
        if key in table:
            return key
    text = str(exc)
    for word, key in _HINTS:
        if word in text and key in table:
            return key
    return None


def _in_config_terms(message: str) -> str:
    """A library message in the file's words: ``--param x=1`` as ``params x=1``,
    ``--sim`` as ``sim``, ``--max-retries`` as ``max_retries``."""
    def option(m):
        word = m.group(1).replace("-", "_")
        return "params" if word == "param" else word
    return re.sub(r"--([a-z][a-z-]*)", option, message)


def _prefixed(key: str, exc: UsageError) -> str:
    text = str(exc)
    return text if text.startswith(f"{key}:") or text.startswith(f"{key}.") \
        else f"{key}: {text}"


# -- one key's value -----------------------------------------------------------------------

def _type_name(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _text(value, key):
    if not isinstance(value, str):
        raise UsageError(f"{key}: expected a string, not {_type_name(value)}", param=key)
    return value


def _flag(value, key):
    if not isinstance(value, bool):
        raise UsageError(f"{key}: expected true or false, not {_type_name(value)}", param=key)
    return value


def _texts(value, key):
    """A string or an array of strings (a comma list for channels and symbols)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{key}: expected a string or an array of strings", param=key)
    return list(value)


def _list(value, key):
    return split_list(_texts(value, key), key.rstrip("s"), param=key)


def _name(value, key):
    return check_name(key, _text(value, key))


def _venue(value, key):
    text = _text(value, key)
    if text not in VENUES:
        raise UsageError(f"venue: unknown venue {text!r} (choose from "
                         f"{', '.join(sorted(VENUES))}){_did_you_mean(text, VENUES)}",
                         param=key)
    return text


def _seconds(key):
    low, high, low_open = SECONDS[key]

    def parse(value, key):
        if isinstance(value, str):
            value = parse_duration(value) / 1e9
        seconds = bounded(value, key, low, high, low_open=low_open)
        if key == "heartbeat" and 0 < seconds < MIN_HEARTBEAT:
            raise UsageError(f"heartbeat: {seconds:g} is too short: give 0 (off) or at least "
                             f"{MIN_HEARTBEAT:g} seconds", param=key)
        return float(seconds)
    return parse


def _duration(value, key):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"duration: expected a duration (\"30s\", \"2h\") or seconds, not "
                         f"{_type_name(value)}", param=key)
    return parse_seconds(value, key)


def _count(minimum):
    def parse(value, key):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UsageError(f"{key}: expected a whole number of at least {minimum}, not "
                             f"{value!r}", param=key)
        return value
    return parse


def _size(value, key):
    low, high = SIZES[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UsageError(f"{key}: expected a size (\"5GB\", \"512MiB\") or bytes, not "
                         f"{_type_name(value)}", param=key)
    size = parse_size(value)
    if not low <= size <= high:
        raise UsageError(f"{key}: {size} bytes is out of range ({low} to {high})", param=key)
    return size


def _rotate(value, key):
    if _text(value, key).strip().lower() not in ROTATIONS:
        raise UsageError(f"rotate: {value!r} is not one of {', '.join(ROTATIONS)}", param=key)
    return value.strip().lower()


def _sim(value, key):
    """``true``, or a table of the simulator's options (``rate``, ``error``, ...)."""
    if value is True:
        return SimOptions()
    if value is False:
        return False
    if not isinstance(value, dict):
        raise UsageError(f"sim: expected true, false or a table such as {{ rate = 50 }}, not "
                         f"{_type_name(value)}", param=key)
    options = {}
    defaults = SimOptions()
    for k, v in value.items():
        if k not in SIM_KEYS:
            raise UsageError(f"sim: unknown key {k!r} (it takes {', '.join(SIM_KEYS)})"
                             f"{_did_you_mean(k, SIM_KEYS)}", param=key)
        expected = type(getattr(defaults, k))
        if k == "error":
            ok = isinstance(v, str)
        elif expected is float or getattr(defaults, k) is None:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        else:
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        if not ok:
            raise UsageError(f"sim: {k} = {v!r} is not valid", param=key)
        options[k] = v
    return SimOptions(**options)


def _params(value, key):
    """A table of venue parameters -> (literal ones, ``NAME_env`` ones: NAME -> variable);
    nested tables (``header.X-Api-Key = ...``) join their names with dots."""
    if not isinstance(value, dict):
        raise UsageError(f"params: expected a table such as {{ nSigFigs = 5 }}, not "
                         f"{_type_name(value)}", param=key)
    literal, from_env = {}, {}

    def walk(table, prefix):
        for k, v in table.items():
            full = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, full + ".")
            elif full.endswith("_env"):
                from_env[full[:-len("_env")]] = _text(v, f"params.{full}")
            elif isinstance(v, bool):
                literal[full] = "true" if v else "false"
            elif isinstance(v, (str, int, float)):
                literal[full] = str(v)
            else:
                raise UsageError(f"params.{full}: expected a string, number or boolean, "
                                 f"not {_type_name(v)}", param=key)
    walk(value, "")
    both = sorted(set(literal) & set(from_env))
    if both:
        raise UsageError(f"params: {both[0]} is given both literally and as {both[0]}_env",
                         param=key)
    return literal, from_env


def _env(value, key):
    if not isinstance(value, dict) or not all(isinstance(v, str) and v
                                              for v in value.values()):
        raise UsageError("env: expected a table of VENUE_VARIABLE = \"OTHER_VARIABLE\" "
                         "(e.g. { APCA_API_KEY_ID = \"TEAM2_KEY_ID\" })", param=key)
    return dict(value)


def _auth(value, key):
    if _text(value, key) not in ("message", "headers"):
        raise UsageError(f"auth: {value!r} is not one of message, headers", param=key)
    return value


def _serve(value, key):
    targets = _texts(value, key)
    for target in targets:
        try:
            parse_target(target)
        except UsageError as exc:
            raise UsageError(f"serve: {exc}", param=key) from None
    return targets


def _metrics(value, path):
    text = _text(value, "metrics")
    try:
        parse_address(text)
    except UsageError as exc:
        raise UsageError(f"metrics: {exc}", param="metrics") from None
    return text


def _log_format(value, path):
    if _text(value, "log_format") not in LOG_FORMATS:
        raise UsageError(f"log_format: {value!r} is not one of {', '.join(LOG_FORMATS)}",
                         param="log_format")
    return value


def _local(path: Path, value: str) -> str:
    """A local path of the file: ``~`` expanded, relative to the file's folder."""
    expanded = Path(os.path.expanduser(value))
    return str(expanded if expanded.is_absolute() else path.absolute().parent / expanded)


def _data(value, path):
    text = check_root(_text(value, "data"))
    return text if is_remote_url(text) or text.startswith("file:") else _local(path, text)


def _spool(value, path):
    return _local(path, _text(value, "spool"))


def _s3_endpoint(value, path):
    parse_endpoint(_text(value, "s3_endpoint"))
    return value


_GLOBAL_PARSERS = {"data": _data, "spool": _spool, "s3_endpoint": _s3_endpoint,
                   "metrics": _metrics, "log_format": _log_format}
_DEFAULT_PARSERS = {"rotate": _rotate, "sim": _sim, "redact": _list, "duration": _duration,
                    "max_frames": _count(1), "max_retries": _count(0),
                    "max_message_size": _size, "spool_min_free": _size, "min_free": _size,
                    **{k: _seconds(k) for k in SECONDS}}
_STREAM_PARSERS = {"name": _name, "venue": _venue, "url": _text, "channels": _list,
                   "symbols": _list, "params": _params, "feed": _text, "auth": _auth,
                   "msgpack": _flag, "send": _texts, "folder": _name, "env": _env,
                   "serve": _serve}
