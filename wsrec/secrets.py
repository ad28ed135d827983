"""Secrets: recognise them, and keep them out of everything wsrec stores or prints.

One ``Redactor`` per recording knows the secrets of that recording and removes them
from the manifest (``args``, ``connections[].url``), from event rows, from outbound
rows (the real bytes go on the wire, the redacted ones are stored), and from error
messages and logs. Inbound messages are never altered: they are stored byte-exact.

A secret is found two ways:

* **by name**: a URL query (or fragment) parameter, a JSON field, a header or a
  recording argument whose name contains one of ``SECRET_NAMES`` (case-insensitive:
  ``apiKey``, ``X-Auth-Token``, ``access_token``, ``signature`` ...), plus the names
  given with ``--redact NAME``, except the few ``HARMLESS_NAMES`` that merely contain
  such a word; and a URL's user-info (``user:password@`` becomes ``***@``);
* **by value**: every value found by name, and those a venue declares
  (``Stream.secrets()``: API keys, tokens from the environment), are then replaced
  wherever they occur, in every form they are commonly encoded in: raw, URL-quoted
  (``quote``/``quote_plus``, upper- or lowercase hex), base64 (standard and urlsafe,
  with and without padding, also inside a longer base64 text) and JSON-escaped.

Values shorter than ``MIN_VALUE`` characters are redacted only where they appear by
name (replacing ``abc`` everywhere would mangle unrelated text), and a few words that
are modes rather than credentials (``auth=headers``, ``key=true``) are kept, and so
are the values a ``Redactor`` is told are ``public``: a simulator's demo token, a
placeholder a replay server takes as any token (the URL it announces is then one a
client can use as printed).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

__all__ = ["REDACTED", "SECRET_NAMES", "HARMLESS_NAMES", "MIN_VALUE", "Redactor",
           "is_secret_name", "encodings", "redact", "redact_url"]

REDACTED = "***"

#: a name containing one of these (case-insensitive) holds a secret
SECRET_NAMES = ("token", "key", "secret", "password", "passwd", "passphrase", "pwd", "auth",
                "signature", "sig", "jwt", "session", "credential", "apikey", "api_key",
                "access_token", "cookie", "bearer", "private")

#: names that contain a secret word but hold none (compared lowercased, ``-`` as ``_``)
HARMLESS_NAMES = frozenset({
    "nsigfigs", "sigfigs",                      # Hyperliquid l2Book: significant figures
    "author", "authors", "author_id", "authority",   # news authors; a URL's authority
    "keyword", "keywords", "keyspace",
    "signal", "signals", "design", "assign", "assignee", "sigma",  # contain "sig"
    "public_key", "publickey", "pubkey", "public_keys",   # public by definition
    "tokens", "token_address", "tokenaddress", "token_id", "tokenid", "token_symbol",
    "token_name", "token_type", "token_decimals",  # a coin or asset (blockchain venues)
})

#: shorter values are redacted where they appear by name, not searched for everywhere
MIN_VALUE = 4

#: values under a secret-looking name that are modes or flags, not credentials
_MODE_WORDS = frozenset({"", REDACTED, "true", "false", "yes", "no", "on", "off", "none",
                         "null", "message", "headers", "header", "query"})

# scheme://user-info@ : the user-info up to the last "@" of the authority
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#\s\"'<>\\]*)@")
# ?name=value, &name=value, ;name=value, #name=value (query and fragment parameters)
_PARAM = re.compile(r"([?&;#])([^=&;#?\s\"'<>\\]+)=([^&;#\s\"'<>\\]*)")
_HEX = re.compile(r"%[0-9A-F]{2}")


def is_secret_name(name, extra: Iterable[str] = ()) -> bool:
    """Whether a parameter, field, header or argument named ``name`` holds a secret."""
    n = str(name).lower()
    if any(w and w.lower() in n for w in extra):   # asked for: no exception
        return True
    if n.replace("-", "_").rsplit(".", 1)[-1] in HARMLESS_NAMES:
        return False
    return any(w in n for w in SECRET_NAMES)


def _is_mode_word(value) -> bool:
    return isinstance(value, str) and value.strip().lower() in _MODE_WORDS


def _utf8(text: str) -> bytes:
    """UTF-8, with undecodable bytes (surrogate escapes) and lone surrogates kept."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _b64_forms(raw: bytes) -> set[str]:
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update((whole, whole.rstrip("=")))
        # inside a longer base64 text, at any of the 3 byte alignments: the characters
        # that depend on this value alone
        for k in range(3):
            enc = encode(b"\0" * k + raw).decode()
            core = enc[-(-8 * k // 6):(8 * (k + len(raw))) // 6]
            if len(core) >= 8:
                forms.add(core)
    return forms


def encodings(value: str) -> set[str]:
    """Every common encoding of ``value``: raw, URL-quoted, base64, JSON-escaped."""
    forms = {value}
    quoted = {quote(value, safe=""), quote(value), quote_plus(value),
              quote_plus(value, safe="/")}
    forms |= quoted
    forms |= {_HEX.sub(lambda m: m.group().lower(), q) for q in quoted}
    forms |= _b64_forms(_utf8(value))
    for ascii_only in (True, False):
        escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms.update((escaped, escaped.replace("/", "\\/")))
    return {f for f in forms if f}


class Redactor:
    """Knows a recording's secrets; returns copies of text, bytes, messages and
    arguments with them replaced by ``***``.

    ``values``: secrets known up front (a venue's keys and tokens). ``names``: more
    names to treat as secret (``--redact NAME``), matched like ``SECRET_NAMES``.
    Everything redacted is also *learned* from first: a token found in a URL's query
    is afterwards removed wherever it appears, in any encoding. ``public``: values that
    are no secret though they stand where one would (a simulator's demo token): kept
    under any name, never learned.
    """

    def __init__(self, values: Iterable[str] = (), names: Iterable[str] = (),
                 public: Iterable[str] = ()):
        if isinstance(values, str):
            values = [values]
        if isinstance(names, str):
            names = [names]
        if isinstance(public, str):
            public = [public]
        self.names = tuple(n.lower() for n in names if n)
        self.public = frozenset(v for v in public if isinstance(v, str) and v)
        self._values: set[str] = set()
        self._text_re: re.Pattern | None = None
        self._bytes_re: re.Pattern | None = None
        self.add(*values)

    # -- what is secret -------------------------------------------------------------------

    @property
    def values(self) -> list[str]:
        """The known secret values (not their encodings), longest first."""
        return sorted(self._values, key=len, reverse=True)

    def secret_name(self, name) -> bool:
        return is_secret_name(name, self.names)

    def add(self, *values) -> None:
        """Know these values as secrets (ignored: short ones, mode words, non-strings)."""
        for value in values:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or len(value) < MIN_VALUE or _is_mode_word(value) \
                    or value in self._values or value in self.public:
                continue
            self._values.add(value)
            self._text_re = self._bytes_re = None

    def learn(self, obj) -> None:
        """Learn the secrets inside ``obj``: values under secret-looking names (dicts,
        JSON text), URL user-info and secret query parameters in any string."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                if self.secret_name(key):
                    self._learn_secret(value)
                else:
                    self.learn(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                self.learn(value)
        elif isinstance(obj, (str, bytes)):
            text = obj.decode("utf-8", "surrogateescape") if isinstance(obj, bytes) else obj
            self._learn_text(text)
            parsed = _json(text)
            if parsed is not None:
                self.learn(parsed)

    def _learn_secret(self, value, nested: bool = False) -> None:
        if isinstance(value, dict):
            for v in value.values():
                self._learn_secret(v, True)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._learn_secret(v, True)
        elif isinstance(value, str):
            # a short word inside a secret's structure ("type":"apikey") is not searched
            # for everywhere; a long one is
            if not nested or len(value) >= 8:
                self.add(value)
            scheme, _, credentials = value.strip().partition(" ")
            if credentials and scheme.lower() in ("bearer", "basic", "token", "digest"):
                self.add(credentials.strip())
                if scheme.lower() == "basic":
                    try:
                        user, _, password = base64.b64decode(credentials.strip(),
                                                              validate=True).decode() \
                            .partition(":")
                    except (ValueError, UnicodeDecodeError):
                        pass
                    else:
                        self.add(password, user if len(user) >= 8 else None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.add(value)

    def _learn_text(self, text: str) -> None:
        if "@" in text:
            for m in _USERINFO.finditer(text):
                info = m.group(2)
                if info == REDACTED:
                    continue
                user, colon, password = info.partition(":")
                if colon:
                    self.add(password, unquote(password))
                    if len(user) >= 8:
                        self.add(user, unquote(user))
                else:   # a bare token as user-info (wss://TOKEN@host)
                    self.add(user, unquote(user))
        if "=" in text:
            for m in _PARAM.finditer(text):
                if self.secret_name(unquote_plus(m.group(2))) and \
                        unquote_plus(m.group(3)) not in self.public:
                    self.add(m.group(3), unquote_plus(m.group(3)), unquote(m.group(3)))

    # -- redacting --------------------------------------------------------------------------

    def _patterns(self):
        if self._text_re is None:
            forms = set()
            for value in self._values:
                forms |= encodings(value)
            forms = sorted(forms, key=len, reverse=True)
            if forms:
                self._text_re = re.compile("|".join(map(re.escape, forms)))
                self._bytes_re = re.compile(b"|".join(re.escape(_utf8(f)) for f in forms))
            else:
                self._text_re = self._bytes_re = False
        return self._text_re, self._bytes_re

    def _structure(self, text: str) -> str:
        """User-info and secret parameters of the URLs in ``text`` -> ``***``."""
        if "@" in text:
            text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
        if "=" in text:
            def param(m):
                value = unquote_plus(m.group(3))
                if not value or _is_mode_word(value) or value in self.public or \
                        not self.secret_name(unquote_plus(m.group(2))):
                    return m.group(0)
                return f"{m.group(1)}{m.group(2)}={REDACTED}"
            text = _PARAM.sub(param, text)
        return text

    def text(self, text: str) -> str:
        """``text`` (a URL, an error message, a log line) without secrets."""
        if not isinstance(text, str):
            return text
        self._learn_text(text)
        text = self._structure(text)
        pattern, _ = self._patterns()
        return pattern.sub(REDACTED, text) if pattern else text

    __call__ = text

    def bytes(self, data: bytes) -> bytes:
        """Bytes (any text encoding, or binary) without the known secret values and the
        secrets of any URL they hold; other bytes are kept exactly."""
        data = bytes(data)
        if b"@" in data or b"=" in data:
            text = data.decode("utf-8", "surrogateescape")
            self._learn_text(text)
            data = _utf8(self._structure(text))
        _, pattern = self._patterns()
        return pattern.sub(REDACTED.encode(), data) if pattern else data

    def message(self, data):
        """A message wsrec sends, as it may be stored: a JSON message with every field
        under a secret-looking name redacted (recursively) and the known values
        removed; any other message with the known values removed. The bytes stay as
        sent except for what is redacted (re-serialised only when a secret could not be
        cut out in place). Takes and returns bytes, or str."""
        if isinstance(data, str):
            return self.message(_utf8(data)).decode("utf-8", "surrogateescape")
        data = bytes(data)
        text = data.decode("utf-8", "surrogateescape")
        parsed = _json(text)
        if parsed is None:
            return self.bytes(data)
        self.learn(parsed)
        expected = self._redact_json(parsed)
        if expected == parsed:
            return self.bytes(data)
        # cut the secret fields' values out in place, then check the result is exactly
        # the redacted message (else write the redacted message re-serialised)
        inplace = text
        for leaf in sorted(self._secret_leaves(parsed), key=len, reverse=True):
            for ascii_only in (True, False):
                token = json.dumps(leaf, ensure_ascii=ascii_only)
                inplace = inplace.replace(token, f'"{REDACTED}"')
                inplace = inplace.replace(token.replace("/", "\\/"), f'"{REDACTED}"')
        inplace = self.text(inplace)
        if _json(inplace) == expected:
            return _utf8(inplace)
        return _utf8(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))

    def _secret_leaves(self, obj, under: bool = False) -> list[str]:
        out = []
        if isinstance(obj, dict):
            for k, v in obj.items():
                out += self._secret_leaves(v, under or self.secret_name(k))
        elif isinstance(obj, list):
            for v in obj:
                out += self._secret_leaves(v, under)
        elif under and isinstance(obj, str) and not _is_mode_word(obj):
            out.append(obj)
        return out

    def _redact_json(self, obj, under: bool = False):
        if isinstance(obj, dict):
            return {k: self._redact_json(v, under or self.secret_name(k))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._redact_json(v, under) for v in obj]
        if isinstance(obj, str):
            return REDACTED if under and not _is_mode_word(obj) else self.text(obj)
        if under and isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return REDACTED
        return obj

    def obj(self, obj, under: bool = False):
        """A copy of ``obj`` (recording arguments, an event's fields: dicts, lists,
        strings, numbers) with values under secret-looking keys replaced, JSON text
        redacted as a message, and every other string as text."""
        if isinstance(obj, dict):
            return {k: self.obj(v, under or self.secret_name(k)) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.obj(v, under) for v in obj]
        if isinstance(obj, str):
            if under and not _is_mode_word(obj):
                return REDACTED
            return self.message(obj) if _json(obj) is not None else self.text(obj)
        if isinstance(obj, bytes):
            return self.message(obj)
        if under and isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return REDACTED
        return obj


def _json(text: str):
    """The JSON object or array ``text`` holds, else None (cheap for anything else)."""
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def redact(obj, names: Iterable[str] = (), values: Iterable[str] = ()):
    """A copy of ``obj`` (e.g. a session's recording arguments) without secrets: what is
    under secret-looking names, URL user-info and secret parameters, and every value so
    found (or given) wherever else it appears."""
    r = Redactor(values, names)
    r.learn(obj)
    return r.obj(obj)


def redact_url(url: str, names: Iterable[str] = (), public: Iterable[str] = ()) -> str:
    """``url`` with its user-info and secret-looking query parameters replaced (but
    those holding one of the ``public`` values)."""
    return Redactor(names=names, public=public).text(url)
