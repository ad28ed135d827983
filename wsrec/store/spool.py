"""The spool: where a recording to a bucket lives on the local disk until it is uploaded.

A recording to ``s3://bkt/x`` writes its sessions as ordinary local sessions (journal,
open part, fsync, lock: every crash guarantee of a local recording) under a spool
folder, and ``wsrec.store._uploader`` uploads each sealed part and removes it::

    <spool>/                      --spool DIR, else $WSREC_SPOOL, else
                                  $XDG_CACHE_HOME/wsrec/spool (~/.cache/wsrec/spool)
      <key>/                      one per remote root: sha256 of its URL, 12 hex digits
        target.json               {"url": "s3://bkt/x", "endpoint": ...}: never a credential
        venue=<v>/date=<d>/<sid>/ the same layout as the root

``wsrec repair --spool`` finds what a crash left here (``targets``, ``sessions``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from wsrec.errors import StorageError, UsageError
from wsrec.store._uploader import Uploader
from wsrec.store.atomic import write_atomic
from wsrec.store.layout import parse_rel
from wsrec.store.location import Root, check_data
from wsrec.store.manifest import MANIFEST

__all__ = ["ENV_SPOOL", "TARGET", "spool_dir", "target_key", "target_folder", "targets",
           "sessions", "Target", "Uploader"]

ENV_SPOOL = "WSREC_SPOOL"
TARGET = "target.json"
_MAX_TARGET = 64 << 10


def spool_dir(spool=None, environ=None) -> Path:
    """``spool`` (--spool), else ``$WSREC_SPOOL``, else ``<cache>/wsrec/spool``: the cache
    is ``$XDG_CACHE_HOME``, else ``~/Library/Caches`` on macOS, else ``~/.cache``."""
    environ = os.environ if environ is None else environ
    if spool not in (None, ""):
        return Path(os.fspath(spool)).expanduser()
    if environ.get(ENV_SPOOL):
        return Path(environ[ENV_SPOOL]).expanduser()
    if environ.get("XDG_CACHE_HOME"):
        cache = Path(environ["XDG_CACHE_HOME"])
    elif sys.platform == "darwin":
        cache = Path.home() / "Library" / "Caches"
    else:
        cache = Path.home() / ".cache"
    return cache / "wsrec" / "spool"


def target_key(url: str) -> str:
    """The spool subfolder of the root ``url``."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


class Target:
    """One spool subfolder: ``folder``, the root's ``url`` and its ``endpoint`` (None:
    the default one)."""

    def __init__(self, folder: Path, url: str, endpoint: str | None):
        self.folder, self.url, self.endpoint = folder, url, endpoint

    def __repr__(self) -> str:
        return f"Target({str(self.folder)!r}, {self.url!r})"


def target_folder(root: Root, spool=None) -> Path:
    """The spool subfolder of ``root`` (created, with its ``target.json``)."""
    if root.local:
        raise UsageError(f"{root.url} is a local folder: it needs no spool", param="spool")
    folder = spool_dir(spool) / target_key(root.url)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"url": root.url, "endpoint": root.endpoint}).encode() + b"\n"
        path = folder / TARGET
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
    except OSError as exc:
        raise StorageError(f"cannot create the spool folder {folder}: "
                           f"{exc.strerror or exc}; choose a writable --spool or "
                           f"{ENV_SPOOL}") from None
    return folder


def targets(spool=None) -> list[Target]:
    """Every spool subfolder with a valid ``target.json`` (others are left alone)."""
    base = spool_dir(spool)
    found = []
    try:
        entries = sorted(base.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(f"cannot read the spool {base}: {exc.strerror or exc}") from None
    for folder in entries:
        target = _read_target(folder)
        if target is not None:
            found.append(target)
    return found


def _read_target(folder: Path) -> Target | None:
    try:
        with open(folder / TARGET, "rb") as f:
            data = json.loads(f.read(_MAX_TARGET))
        url, endpoint = data["url"], data.get("endpoint")
        if not isinstance(url, str) or not (endpoint is None or isinstance(endpoint, str)):
            return None
        check_data(url)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if folder.name != target_key(url):
        return None
    return Target(folder, url, endpoint)


def sessions(folder: Path) -> list[Path]:
    """The session folders under one spool subfolder (``venue=*/date=*/<sid>`` holding
    a manifest), oldest first."""
    found = []
    for manifest in Path(folder).glob(f"venue=*/date=*/*/{MANIFEST}"):
        rel = manifest.parent.relative_to(folder).as_posix()
        if parse_rel(rel) is not None:
            found.append(manifest.parent)
    return sorted(found, key=lambda p: p.name)
