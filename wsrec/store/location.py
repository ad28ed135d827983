"""Where sessions are stored: a data root on a local disk or in an object store.

``open_root(data)`` turns ``--data`` (else ``$WSREC_DATA``, else ``./wsrec-data``) into a
``Root``: a pyarrow filesystem, the root's path in it, and a URL to show in messages.

- a local folder (a plain path, which may contain ``:``, or ``file:///abs/path``);
- ``s3://bucket/prefix``: Amazon S3 or any S3-compatible store (MinIO, Ceph, R2, ...).
  The endpoint is ``--s3-endpoint``, else ``$AWS_ENDPOINT_URL_S3``, else
  ``$AWS_ENDPOINT_URL`` (else AWS itself); the region ``$AWS_REGION``, else
  ``$AWS_DEFAULT_REGION``, else us-east-1. Credentials come from the AWS SDK's own
  chain (environment, ``AWS_PROFILE`` and ``~/.aws``, instance role): wsrec never reads,
  stores or prints them, and refuses a URL that carries them;
- ``gs://bucket/prefix``: Google Cloud Storage, credentials from the environment (ADC).

Reading works on every root. Writing (journals, fsync, locks, renames) needs a local
folder: ``Root.local`` says whether the root is one.

pyarrow reports every storage failure as an ``OSError`` whose text carries the AWS
error name; ``fs_error`` maps it, in this one place, to wsrec's ``RootNotFound``,
``RootAccessDenied`` or ``StorageUnavailable`` with one line a user can act on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from wsrec.errors import (RootAccessDenied, RootNotFound, StorageError, StorageUnavailable,
                          UnsupportedDataRoot, UsageError, first_line)

__all__ = ["Root", "RootPath", "open_root", "fs_error", "is_remote_url", "parse_endpoint",
           "DEFAULT_DATA", "ENV_DATA", "ENV_ENDPOINTS", "REMOTE_SCHEMES"]

DEFAULT_DATA = "wsrec-data"
ENV_DATA = "WSREC_DATA"
#: where the S3 endpoint comes from when --s3-endpoint is not given, first one set wins
ENV_ENDPOINTS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REMOTE_SCHEMES = ("s3", "gs")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: an S3 request: connect within 5 s, answer within 30 s, 3 attempts (SDK backoff)
S3_OPTIONS = dict(connect_timeout=5, request_timeout=30, background_writes=True)
S3_ATTEMPTS = 3
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Root:
    """A data root: ``fs`` (a pyarrow filesystem), ``base`` (the root's path in it: a
    local path, or ``bucket/prefix``), ``url`` (what messages show: the local path or
    ``s3://bucket/prefix``, never a credential), ``local`` (a local folder, which the
    write path needs) and ``endpoint`` (the S3 endpoint, for messages; None: the
    default)."""

    fs: pafs.FileSystem = field(repr=False, compare=False)
    base: str
    url: str
    local: bool
    endpoint: str | None = None

    def path(self, *rel: str) -> str:
        """The filesystem path of ``rel`` (``venue=a/date=…/sid``) under the root."""
        parts = [p.strip("/") for p in rel if p and p.strip("/")]
        if not parts:
            return self.base
        head = self.base.rstrip("/")
        return "/".join([head, *parts]) if head else "/" + "/".join(parts)

    def show(self, rel: str = "") -> str:
        """``rel`` as messages name it: ``s3://bkt/x/alpaca/sid`` or a local path."""
        rel = rel.strip("/")
        if not rel:
            return self.url
        return str(Path(self.url) / rel) if self.local else f"{self.url.rstrip('/')}/{rel}"

    @property
    def bucket(self) -> str | None:
        return None if self.local else self.base.split("/", 1)[0]

    def check(self) -> None:
        """Raise RootNotFound when the bucket doesn't exist (listing a missing bucket
        may look empty), RootAccessDenied or StorageUnavailable when it can't be asked.
        A local root needs no check: a missing folder holds no sessions."""
        if self.local:
            return
        try:
            info = self.fs.get_file_info(self.bucket)
        except OSError as exc:
            raise fs_error(exc, self, "checking the bucket") from None
        if info.type == pafs.FileType.NotFound:
            raise RootNotFound(f"{self.url}: bucket '{self.bucket}' does not exist; create "
                               f"it or fix --data")

    def list(self, rel: str = "", *, recursive: bool = False) -> list[pafs.FileInfo]:
        """What lies under ``rel`` ([] when nothing does)."""
        selector = pafs.FileSelector(self.path(rel), recursive=recursive,
                                     allow_not_found=True)
        try:
            return self.fs.get_file_info(selector)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise fs_error(exc, self, f"listing {self.show(rel)}") from None

    def list_dirs(self, rel: str = "") -> list[str]:
        """The names of the folders right under ``rel`` (hidden ones left out)."""
        return [i.base_name for i in self.list(rel)
                if i.type == pafs.FileType.Directory and not i.base_name.startswith(".")]

    def info(self, rel: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path(rel))
        except OSError as exc:
            raise fs_error(exc, self, f"looking at {self.show(rel)}") from None

    def read_bytes(self, rel: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the file ``rel`` (more means too large).
        FileNotFoundError when it doesn't exist; other failures mapped (``fs_error``)."""
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read(limit + 1)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise fs_error(exc, self, f"reading {self.show(rel)}") from None

    def open_input(self, rel: str) -> pa.NativeFile:
        """A random-access file (range requests on an object store); FileNotFoundError
        when it doesn't exist."""
        if self.local:
            return pa.OSFile(self.path(rel))
        return self.fs.open_input_file(self.path(rel))

    def sha256(self, rel: str) -> str:
        """The sha256 of ``rel``, read once, 8 MiB at a time."""
        import hashlib
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self.path(rel)) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def put_file(self, local_path, rel: str) -> None:
        """Upload one file as one object; it appears whole or not at all."""
        try:
            with open(local_path, "rb") as src, \
                    self.fs.open_output_stream(self.path(rel)) as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
        except OSError as exc:
            raise fs_error(exc, self, f"uploading {self.show(rel)}") from None

    def put_bytes(self, rel: str, data: bytes) -> None:
        try:
            with self.fs.open_output_stream(self.path(rel)) as out:
                out.write(data)
        except OSError as exc:
            raise fs_error(exc, self, f"writing {self.show(rel)}") from None

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise fs_error(exc, self, f"deleting {self.show(rel)}") from None


class RootPath:
    """A file or folder under a remote root, for code that takes a session folder:
    ``/`` joins names, ``.name`` and ``.parent`` work like ``Path``'s, and ``str()`` is
    the URL messages show."""

    __slots__ = ("root", "rel")

    def __init__(self, root: Root, rel: str = ""):
        self.root, self.rel = root, rel.strip("/")

    def __truediv__(self, name: str) -> "RootPath":
        return RootPath(self.root, f"{self.rel}/{name}" if self.rel else str(name))

    @property
    def name(self) -> str:
        return self.rel.rpartition("/")[2] or self.root.base.rstrip("/").rpartition("/")[2]

    @property
    def parent(self) -> "RootPath":
        return RootPath(self.root, self.rel.rpartition("/")[0])

    def __str__(self) -> str:
        return self.root.show(self.rel)

    def __repr__(self) -> str:
        return f"RootPath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RootPath) and (other.root.url, other.rel) == \
            (self.root.url, self.rel)

    def __hash__(self) -> int:
        return hash((self.root.url, self.rel))


def is_remote_url(text) -> bool:
    m = _URL.match(os.fspath(text)) if isinstance(text, (str, os.PathLike)) else None
    return bool(m) and m.group(1).lower() in REMOTE_SCHEMES


def check_data(text: str) -> str:
    """``text`` if it can name a data root (a local path, ``file://``, ``s3://``,
    ``gs://``), else UnsupportedDataRoot. Nothing is contacted."""
    m = _URL.match(text)
    if not m:
        return text
    scheme = m.group(1).lower()
    if scheme == "file":
        _file_path(text)
    elif scheme in REMOTE_SCHEMES:
        _bucket_and_prefix(text)
    else:
        raise UnsupportedDataRoot(
            f"data root {text!r} is a URL wsrec can't use; give a local folder, "
            f"s3://bucket/prefix or gs://bucket/prefix", param="data")
    return text


def _file_path(text: str) -> str:
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost") or not parts.path:
        raise UnsupportedDataRoot(f"data root {text!r}: a file:// URL names a local folder "
                                  f"(file:///abs/path)", param="data")
    return parts.path


def _bucket_and_prefix(text: str) -> tuple[str, str]:
    scheme, _, rest = text.partition("://")
    netloc, _, prefix = rest.partition("/")
    if "@" in netloc:  # credentials in the URL: never echo them
        raise UnsupportedDataRoot(
            f"data root {scheme}://...: credentials in the URL are not accepted; use the "
            f"AWS environment variables, AWS_PROFILE or an instance role", param="data")
    if "?" in text or "#" in text:
        raise UnsupportedDataRoot(
            f"data root {text!r}: query strings are not accepted (give the endpoint with "
            f"--s3-endpoint)", param="data")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", netloc):
        raise UnsupportedDataRoot(
            f"data root {text!r}: no valid bucket name after {scheme}:// (e.g. "
            f"{scheme}://bucket/prefix)", param="data")
    prefix = prefix.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise UnsupportedDataRoot(f"data root {text!r}: empty, '.' or '..' folder in the "
                                  f"prefix", param="data")
    return netloc, prefix


def parse_endpoint(url: str) -> tuple[str, str]:
    """``http://127.0.0.1:9000`` -> (``127.0.0.1:9000``, ``http``); no scheme means https."""
    text = url.strip()
    m = _URL.match(text)
    scheme = m.group(1).lower() if m else "https"
    if scheme not in ("http", "https"):
        raise UsageError(f"s3_endpoint: {url!r} is not an http:// or https:// URL",
                         param="s3_endpoint")
    parts = urlsplit(text if m else f"https://{text}")
    if "@" in parts.netloc:
        raise UsageError("s3_endpoint: credentials in the endpoint URL are not accepted; use "
                         "the AWS environment variables, AWS_PROFILE or an instance role",
                         param="s3_endpoint")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"s3_endpoint: {url!r} is not a host[:port] URL (e.g. "
                         f"http://127.0.0.1:9000)", param="s3_endpoint")
    try:
        _ = parts.port
    except ValueError:
        raise UsageError(f"s3_endpoint: {url!r} has an invalid port",
                         param="s3_endpoint") from None
    return parts.netloc, scheme


def s3_endpoint(endpoint: str | None = None, environ=None) -> str | None:
    """The endpoint to use: ``endpoint`` (--s3-endpoint), else the first of
    ``ENV_ENDPOINTS`` that is set, else None (AWS)."""
    if endpoint:
        return endpoint
    environ = os.environ if environ is None else environ
    for name in ENV_ENDPOINTS:
        if environ.get(name):
            return environ[name]
    return None


def open_root(data=None, *, endpoint: str | None = None,
              filesystem: pafs.FileSystem | None = None) -> Root:
    """The ``Root`` ``data`` names (a Root is returned as it is); see the module doc.

    Nothing is contacted: ``Root.check()`` asks the store. ``filesystem`` replaces the
    filesystem a URL would get (tests: a ``PyFileSystem`` that injects faults)."""
    if isinstance(data, Root):
        return data
    if data is None or data == "":
        data = os.environ.get(ENV_DATA) or DEFAULT_DATA
    text = check_data(os.fspath(data))
    m = _URL.match(text)
    scheme = m.group(1).lower() if m else None
    if scheme is None or scheme == "file":
        path = Path(_file_path(text) if scheme else text).expanduser()
        return Root(filesystem or pafs.LocalFileSystem(), str(path), str(path), True)
    bucket, prefix = _bucket_and_prefix(text)
    url = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
    base = f"{bucket}/{prefix}" if prefix else bucket
    if filesystem is not None:
        return Root(filesystem, base, url, False, endpoint)
    if scheme == "gs":
        try:
            fs = pafs.GcsFileSystem()
        except (pa.ArrowNotImplementedError, ImportError) as exc:
            raise UnsupportedDataRoot(f"data root {url}: this pyarrow has no Google Cloud "
                                      f"Storage support ({first_line(exc)})",
                                      param="data") from None
        return Root(fs, base, url, False)
    chosen = s3_endpoint(endpoint)
    options = dict(S3_OPTIONS)
    if chosen:
        options["endpoint_override"], options["scheme"] = parse_endpoint(chosen)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        fs = pafs.S3FileSystem(
            region=region, retry_strategy=pafs.AwsStandardS3RetryStrategy(S3_ATTEMPTS),
            **options)
    except (pa.ArrowNotImplementedError, ImportError) as exc:
        raise UnsupportedDataRoot(f"data root {url}: this pyarrow has no S3 support "
                                  f"({first_line(exc)})", param="data") from None
    except OSError as exc:
        raise StorageError(f"{url}: cannot set up the S3 client ({first_line(exc)})") from None
    return Root(fs, base, url, False, chosen)


# -- pyarrow's storage errors -> wsrec's ------------------------------------------------------

_AWS = re.compile(r"AWS Error (\w+)(?: \(HTTP status (\d+)\))? during (\w+) operation: ?"
                  r"([^\n]*)")
_DENIED = {"ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH",
           "EXPIRED_TOKEN", "INVALID_SIGNATURE", "MISSING_AUTHENTICATION_TOKEN",
           "INVALID_CLIENT_TOKEN_ID", "UNRECOGNIZED_CLIENT", "ACCESS_DENIED_EXCEPTION"}
_TRANSIENT = {"NETWORK_CONNECTION", "SLOW_DOWN", "SERVICE_UNAVAILABLE", "INTERNAL_FAILURE",
              "REQUEST_TIMEOUT", "REQUEST_TIME_TOO_SKEWED", "THROTTLING",
              "REQUEST_EXPIRED", "REQUEST_TIMEOUT_EXCEPTION"}
_NOISE = re.compile(r"\s*(\(Request ID:[^)]*\)|Details:.*|Request ID:.*)$", re.S)


def aws_error(exc: BaseException) -> tuple[str, int | None, str, str] | None:
    """(error name, HTTP status or None, operation, detail) of a pyarrow S3 error."""
    m = _AWS.search(str(exc))
    if not m:
        return None
    detail = _NOISE.sub("", m.group(4)).strip().rstrip(";.").strip()
    return m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3), detail


def fs_error(exc: OSError, root: Root, what: str) -> StorageError:
    """The wsrec error for an ``OSError`` pyarrow raised while ``what`` (``reading
    s3://bkt/x/…``): RootNotFound, RootAccessDenied, StorageUnavailable, else a
    StorageError; one line, no request id, never a credential."""
    found = aws_error(exc)
    if found is None:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        return StorageError(f"{root.url}: {what} failed: {reason}")
    name, status, operation, detail = found
    camel = "".join(w.capitalize() for w in name.split("_"))
    if name == "NO_SUCH_BUCKET":
        return RootNotFound(f"{root.url}: bucket '{root.bucket}' does not exist; create it "
                            f"or fix --data")
    if name in _DENIED or status in (401, 403):
        return RootAccessDenied(f"{root.url}: access denied ({camel}) while {what}; check "
                                f"the AWS credentials: environment, AWS_PROFILE or "
                                f"instance role")
    if name in _TRANSIENT or (status is not None and status >= 500):
        where = f" at {root.endpoint}" if root.endpoint else ""
        reason = f"{camel}: {detail}" if detail else camel
        return StorageUnavailable(f"{root.url}: storage unavailable{where} while {what} "
                                  f"({reason}); try again, or check the endpoint "
                                  f"(--s3-endpoint) and the network")
    reason = f"{camel} during {operation}" + (f": {detail}" if detail else "")
    return StorageError(f"{root.url}: {what} failed ({reason})")


def storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (an AWS error), not the bytes read."""
    return isinstance(exc, OSError) and aws_error(exc) is not None
