"""``session.json``: the manifest of one session, replaced atomically, never edited in place."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from .errors import CorruptData, first_line, storage_error
from .part import fsync_dir

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "STATUSES",
    "load_manifest",
    "save_manifest",
    "new_session_id",
    "redact",
    "REDACTED",
]

FORMAT_VERSION = 2
MANIFEST = "session.json"
#: recording: being written (live) or crashed; complete: closed normally;
#: failed: ended by a fatal error, a full disk or exhausted retries;
#: recovered: a crashed session rebuilt by ``wsrec repair``.
STATUSES = ("recording", "complete", "failed", "recovered")
REDACTED = "***"

_REQUIRED = {"format_version": int, "venue": str, "session": str, "status": str, "parts": list}
_SECRET_WORDS = ("secret", "token", "password", "passwd", "key", "auth", "signature", "jwt")


def new_session_id(now_ns: int | None = None) -> str:
    """``20261121T210501Z-3f9a``: UTC start time, then 4 random hex digits."""
    secs = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000_000
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(secs)) + "-" + secrets.token_hex(2)


def redact(args):
    """A copy of recording arguments with every value under a secret-looking key replaced."""
    if isinstance(args, dict):
        return {k: (REDACTED if v is not None and any(w in str(k).lower() for w in _SECRET_WORDS)
                    else redact(v)) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return [redact(v) for v in args]
    return args


def load_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise CorruptData(f"{path}: missing manifest; not a wsrec session folder") from None
    except OSError as exc:
        raise CorruptData(f"{path}: cannot read manifest ({first_line(exc)})") from exc
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{path}: manifest is not valid JSON ({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise CorruptData(f"{path}: manifest is not a JSON object")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            raise CorruptData(f"{path}: manifest lacks a valid {key!r}")
    if data["format_version"] > FORMAT_VERSION:
        raise CorruptData(f"{path}: format_version {data['format_version']} is newer than this "
                          f"wsrec understands ({FORMAT_VERSION}); upgrade wsrec")
    if data["status"] not in STATUSES:
        raise CorruptData(f"{path}: unknown status {data['status']!r}")
    return data


def save_manifest(folder: Path, manifest: dict) -> None:
    """Write to a temporary file, fsync, rename over ``session.json``, fsync the folder."""
    folder = Path(folder)
    tmp = folder / (MANIFEST + ".tmp")
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)
        fsync_dir(folder)
    except OSError as exc:
        raise storage_error(exc, str(folder / MANIFEST)) from exc
