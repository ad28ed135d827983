"""The uploader: one thread per recording moves sealed parts from the spool to a bucket.

A recording to a remote root writes local sessions into its spool folder
(``wsrec.store.spool``). The writer's flush thread calls ``sealed`` when a part is
published and the writer calls ``closed`` when a session ends: each only appends a job
to a FIFO (never a wait on the network), and this thread works the jobs in order:

- a part: upload it (an object appears whole or not at all), check its size and its
  sha256 (re-read from the bucket) against the manifest entry, and only then remove
  the local file. A mismatch deletes the object and tries again; after
  ``MAX_MISMATCHES`` the part stays local and the uploader stops (``CorruptData``).
- a manifest: upload a copy of the spool manifest that lists only the parts already
  uploaded (status ``recording``), so a reader never sees a manifest naming a missing
  part; the last one (``closed``) is the final manifest, after which the spool folder
  of the session is removed.

A bucket that can't be reached (``StorageUnavailable``) is retried with backoff
(``wsrec.retry``) on the injected clock, for as long as it takes: the spool grows
meanwhile, bounded by the free-disk check in ``sealed`` (``DiskFull`` below
``min_free``). A missing bucket or refused credentials stop the uploader (``failure``);
what is left in the spool is uploaded by ``wsrec repair --spool``.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import threading
import time
from pathlib import Path

from wsrec.errors import (CorruptData, DiskFull, StorageError, StorageUnavailable,
                          WsrecError)
from wsrec.retry import backoff_delay
from wsrec.store._lock import LOCK
from wsrec.store.disk import below, format_size as _size
from wsrec.store.location import Root
from wsrec.store.manifest import MANIFEST

__all__ = ["Uploader", "MAX_MISMATCHES", "DEFAULT_MIN_FREE", "min_free_default"]

#: a part whose uploaded copy doesn't match this many times stays local
MAX_MISMATCHES = 3
#: the spool needs this much free disk, or 5% of its filesystem if that is less
DEFAULT_MIN_FREE = 1 << 30


def min_free_default(total: int) -> int:
    return min(DEFAULT_MIN_FREE, total // 20)


class _Job:
    __slots__ = ("folder", "entry", "final")

    def __init__(self, folder: Path, entry: dict | None = None, final: dict | None = None):
        self.folder, self.entry, self.final = folder, entry, final


class Uploader:
    """Uploads the sessions written under ``spool`` (a spool subfolder) to ``root``.

    ``clock`` (monotonic seconds), ``sleep`` (seconds; default: a wait that ``close``
    interrupts) and ``rng`` (the backoff's jitter) are injectable; ``backoff`` is
    (first delay, longest delay) in seconds. ``disk_usage(path)`` gives ``.free`` and
    ``.total`` (``shutil.disk_usage``); ``min_free`` the bytes the spool must keep free
    (None: ``min_free_default``). ``warn(line)`` is told once when the uploader stops.
    """

    def __init__(self, root: Root, spool: Path, *, clock=time.monotonic, sleep=None,
                 rng=None, backoff: tuple[float, float] = (0.5, 30.0),
                 disk_usage=shutil.disk_usage, min_free: int | None = None, warn=None):
        self.root, self.spool = root, Path(spool)
        self.clock, self.rng = clock, rng or random.Random()
        self._sleep = sleep or self._nap
        self.base, self.cap = backoff
        self._disk_usage, self.min_free = disk_usage, min_free
        self._warn = warn
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._busy = False
        self.uploaded: dict[Path, list[str]] = {}    # per session folder, in order
        self.parts_uploaded = 0
        self.bytes_uploaded = 0
        self.retries = 0
        self.last_error: str | None = None           # the latest transient failure
        self.failure: WsrecError | None = None       # stopped for good
        self.thread = threading.Thread(target=self._run, name="wsrec-uploader", daemon=True)

    # -- the writer's hooks: never wait on the network ---------------------------------

    def sealed(self, folder: Path, entry: dict) -> None:
        """A part of ``folder`` was published (the flush thread): queue its upload and
        a manifest; DiskFull when the spool's disk is below ``min_free``."""
        with self._cond:
            self._jobs.append(_Job(Path(folder), dict(entry)))
            self._jobs.append(_Job(Path(folder)))
            self._cond.notify()
        self.check_space()

    def closed(self, folder: Path, manifest: dict) -> None:
        """The session in ``folder`` ended with ``manifest``: queue the final manifest."""
        snapshot = json.loads(json.dumps(manifest))
        with self._cond:
            self._jobs.append(_Job(Path(folder), final=snapshot))
            self._cond.notify()

    def check_space(self) -> None:
        need = self.min_free if self.min_free is not None else min_free_default
        low = below(self.spool, need, disk_usage=self._disk_usage)
        if low is None:
            return
        parts, size = self.backlog()
        why = f"; {self.last_error}" if self.last_error else ""
        if self.failure is not None:
            why = f"; {self.failure}"
        raise DiskFull(f"spool {self.spool}: {_size(low.free)} free, below --spool-min-free "
                       f"{_size(low.need)}; {parts} part(s) ({_size(size)}) wait for "
                       f"{self.root.url}{why}")

    # -- state -----------------------------------------------------------------------

    def backlog(self) -> tuple[int, int]:
        """(parts, bytes) still waiting to be uploaded."""
        with self._cond:
            entries = [j.entry for j in self._jobs if j.entry is not None]
        return len(entries), sum(int(e.get("bytes") or 0) for e in entries)

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._jobs and not self._busy

    def start(self) -> "Uploader":
        self.thread.start()
        return self

    def close(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds (real time) for every job, then stop. None when
        everything is uploaded, else one line saying what is left and how to finish."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._jobs or self._busy) and self.failure is None and \
                    self.thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self.thread.is_alive():
            self.thread.join(5.0)
        parts, size = self.backlog()
        sessions = len({j.folder for j in self._jobs})
        if not sessions and self.failure is None:
            return None
        why = self.failure or self.last_error or f"not finished within {timeout:g} s"
        return (f"{parts} part(s) ({_size(size)}) of {sessions} session(s) not uploaded to "
                f"{self.root.url} ({why}); they are kept in {self.spool}: run 'wsrec "
                f"repair --spool' to upload them")

    # -- the thread --------------------------------------------------------------------

    def _nap(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while not self._jobs and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                job = self._jobs[0]
                if job.entry is None and job.final is None and any(
                        j.folder == job.folder for j in list(self._jobs)[1:]):
                    self._jobs.popleft()      # a newer manifest of the session follows
                    continue
                self._busy = True
            try:
                self._do(job)
            except StorageUnavailable as exc:
                self.last_error = str(exc)
                attempt += 1
                self.retries += 1
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                self._sleep(backoff_delay(attempt, self.base, self.cap, self.rng))
                continue
            except (WsrecError, OSError) as exc:
                self._give_up(exc if isinstance(exc, WsrecError) else StorageError(
                    f"{self.spool}: {exc.strerror or exc}"))
                return
            except BaseException as exc:   # a bug: keep its traceback, but say it stopped
                self._give_up(StorageError(f"uploader crashed: {type(exc).__name__}: {exc}"))
                raise
            attempt = 0
            self.last_error = None
            with self._cond:
                self._jobs.popleft()
                self._busy = False
                self._cond.notify_all()

    def _give_up(self, exc: WsrecError) -> None:
        with self._cond:
            self.failure = exc
            self._busy = False
            self._cond.notify_all()
        if self._warn is not None:
            self._warn(f"uploads stopped: {exc}; recording goes on into {self.spool} "
                       f"(run 'wsrec repair --spool' once fixed)")

    def _rel(self, folder: Path, name: str = "") -> str:
        rel = folder.relative_to(self.spool).as_posix()
        return f"{rel}/{name}" if name else rel

    def _do(self, job: _Job) -> None:
        if job.entry is not None:
            self._part(job.folder, job.entry)
        else:
            self._manifest(job.folder, job.final)

    def _part(self, folder: Path, entry: dict) -> None:
        name = entry["file"]
        local = folder / name
        done = self.uploaded.setdefault(folder, [])
        if name in done:
            return
        upload_part(self.root, local, self._rel(folder, name), entry)
        os.unlink(local)
        done.append(name)
        self.parts_uploaded += 1
        self.bytes_uploaded += int(entry.get("bytes") or 0)

    def _manifest(self, folder: Path, final: dict | None) -> None:
        done = set(self.uploaded.get(folder, ()))
        if final is None:
            try:
                manifest = json.loads((folder / MANIFEST).read_bytes())
            except FileNotFoundError:
                return
            manifest["parts"] = [p for p in manifest["parts"] if p["file"] in done]
            manifest["status"] = "recording"
        else:
            manifest = final
            missing = [p["file"] for p in manifest["parts"] if p["file"] not in done]
            if missing:   # only when a part could not be uploaded: the uploader stopped
                raise StorageError(f"{folder}: {len(missing)} part(s) not uploaded")
        self.root.put_bytes(self._rel(folder, MANIFEST),
                            json.dumps(manifest, indent=2).encode() + b"\n")
        if final is not None:
            remove_spooled(folder)
            self.uploaded.pop(folder, None)


def upload_part(root: Root, local: Path, rel: str, entry: dict) -> None:
    """Upload ``local`` to ``rel`` and check the copy's size and sha256 against
    ``entry`` (re-read from the store); a mismatch deletes the copy and tries again,
    ``MAX_MISMATCHES`` times, then CorruptData. Transient failures raise
    StorageUnavailable (the caller retries)."""
    for _ in range(MAX_MISMATCHES):
        root.put_file(local, rel)
        if remote_matches(root, rel, entry):
            return
        root.delete(rel)
    raise CorruptData(f"{root.show(rel)}: the uploaded copy does not match {local} "
                      f"({MAX_MISMATCHES} tries); the local part is kept")


def remote_matches(root: Root, rel: str, entry: dict) -> bool:
    """Whether the object ``rel`` has ``entry``'s size and sha256 (False: absent)."""
    import pyarrow.fs as pafs
    info = root.info(rel)
    if info.type != pafs.FileType.File or info.size != entry["bytes"]:
        return False
    try:
        return root.sha256(rel) == entry["sha256"]
    except FileNotFoundError:
        return False
    except OSError as exc:
        from wsrec.store.location import fs_error
        raise fs_error(exc, root, f"reading {root.show(rel)}") from None


def remove_spooled(folder: Path, *, parents: bool = False) -> bool:
    """Remove a session's spool folder once the bucket has it all: only the manifest
    and the lock may be left (anything else, e.g. a journal, keeps the folder for
    ``wsrec repair --spool``). ``parents``: empty ``date=``/``venue=`` parents go too
    (not while recording: the next session may be created there). True if removed."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return True
    if set(names) - {MANIFEST, LOCK, MANIFEST + ".tmp"}:
        return False
    for name in names:
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
        if parents:
            os.rmdir(folder.parent)          # date=…
            os.rmdir(folder.parent.parent)   # venue=…
    except OSError:
        pass
    return True
