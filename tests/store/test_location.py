"""wsrec.store.location: data root URLs, the S3 endpoint, and pyarrow's storage errors
mapped to wsrec's (the literal messages pyarrow 26 gives against moto)."""

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from wsrec.errors import (RootAccessDenied, RootNotFound, StorageError, StorageUnavailable,
                          UnsupportedDataRoot, UsageError)
from wsrec.store.location import (RootPath, fs_error, open_root, parse_endpoint,
                                  s3_endpoint)
from wsrec.store.roots import data_root


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "WSREC_DATA"):
        monkeypatch.delenv(name, raising=False)


def test_local_roots(tmp_path, monkeypatch):
    root = open_root(tmp_path)
    assert root.local and root.base == str(tmp_path) and root.url == str(tmp_path)
    assert open_root("run:1").base == "run:1"                 # a colon is no scheme
    assert open_root(f"file://{tmp_path}").base == str(tmp_path)
    assert open_root().base == "wsrec-data"
    monkeypatch.setenv("WSREC_DATA", str(tmp_path / "x"))
    assert open_root().base == str(tmp_path / "x")
    assert open_root(root) is root
    assert root.path("a", "b") == str(tmp_path / "a" / "b")


def test_s3_roots():
    root = open_root("s3://bkt/some/prefix/")
    assert not root.local and root.base == "bkt/some/prefix"
    assert root.url == "s3://bkt/some/prefix" and root.bucket == "bkt"
    assert isinstance(root.fs, pafs.S3FileSystem)
    assert root.path("venue=a", "date=2026-01-01") == "bkt/some/prefix/venue=a/date=2026-01-01"
    assert open_root("s3://bkt").base == "bkt"
    where = RootPath(root, "venue=a/date=2026-01-01/sid")
    assert str(where) == "s3://bkt/some/prefix/venue=a/date=2026-01-01/sid"
    assert where.name == "sid" and where.parent.name == "date=2026-01-01"
    assert str(where / "session.json").endswith("/sid/session.json")


@pytest.mark.parametrize("url,what", [
    ("HTTP://h/p", "a URL wsrec can't use"), ("ftp://x/y", "a URL wsrec can't use"),
    ("s3://", "no valid bucket name"), ("s3:///x", "no valid bucket name"),
    ("s3://b/x?endpoint_override=h", "query strings"), ("s3://b/a//c", "empty, '.' or '..'"),
    ("s3://b/../c", "empty, '.' or '..'"), ("file://host/x", "file:///abs/path"),
])
def test_bad_roots_are_usage_errors(url, what):
    with pytest.raises(UnsupportedDataRoot, match=what) as info:
        open_root(url)
    assert info.value.param == "data"


def test_credentials_in_a_url_are_refused_unshown():
    with pytest.raises(UnsupportedDataRoot) as info:
        open_root("s3://AKIAEXAMPLE:s3cr3t@bkt/x")
    assert "s3cr3t" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
    assert "credentials in the URL" in str(info.value)
    with pytest.raises(UsageError) as info:
        parse_endpoint("http://user:s3cr3t@minio:9000")
    assert "s3cr3t" not in str(info.value)


def test_endpoint_precedence(monkeypatch):
    env = {"AWS_ENDPOINT_URL": "http://generic:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2"}
    assert s3_endpoint("http://option:3", env) == "http://option:3"
    assert s3_endpoint(None, env) == "http://s3only:2"
    assert s3_endpoint(None, {"AWS_ENDPOINT_URL": "http://generic:1"}) == "http://generic:1"
    assert s3_endpoint(None, {}) is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    assert open_root("s3://b/x").endpoint == "http://generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2")
    assert open_root("s3://b/x").endpoint == "http://s3only:2"
    assert open_root("s3://b/x", endpoint="http://option:3").endpoint == "http://option:3"


def test_parse_endpoint():
    assert parse_endpoint("http://127.0.0.1:9000") == ("127.0.0.1:9000", "http")
    assert parse_endpoint("https://s3.example.com") == ("s3.example.com", "https")
    assert parse_endpoint("minio:9000") == ("minio:9000", "https")
    for bad in ("ftp://x", "http://h:99999999", "http://h/path", "http://"):
        with pytest.raises(UsageError):
            parse_endpoint(bad)


def test_data_root_refuses_a_bucket(monkeypatch):
    with pytest.raises(UnsupportedDataRoot, match="s3://b/x: writing needs a local data root"):
        data_root("s3://b/x")
    monkeypatch.setenv("WSREC_DATA", "s3://b/x")
    with pytest.raises(UnsupportedDataRoot, match="read-only"):
        data_root()
    assert data_root("run:1") == Path("run:1")


# -- error mapping, on the literal messages (design section 1.2) ------------------------------

ROOT = open_root("s3://nobucket/x", endpoint="http://127.0.0.1:41721")
MESSAGES = [
    ("When listing objects under key 'x/' in bucket 'nobucket': AWS Error NO_SUCH_BUCKET "
     "during ListObjectsV2 operation: The specified bucket does not exist (Request ID: "
     "17A9A)", RootNotFound, "s3://nobucket/x: bucket 'nobucket' does not exist; create it "
                             "or fix --data"),
    ("When initiating multiple part upload for key 'x/y' in bucket 'nobucket': AWS Error "
     "NO_SUCH_BUCKET during CreateMultipartUpload operation: The specified bucket does not "
     "exist (Request ID: 17A9B)", RootNotFound, "bucket 'nobucket' does not exist"),
    ("When getting information for key 'x/session.json' in bucket 'bkt': AWS Error "
     "ACCESS_DENIED during HeadObject operation: No response body.", RootAccessDenied,
     "s3://nobucket/x: access denied (AccessDenied) while reading; check the AWS "
     "credentials: environment, AWS_PROFILE or instance role"),
    ("When listing objects under key 'x/' in bucket 'bkt': AWS Error INVALID_ACCESS_KEY_ID "
     "during ListObjectsV2 operation: The AWS Access Key Id you provided does not exist in "
     "our records. (Request ID: 9)", RootAccessDenied, "access denied (InvalidAccessKeyId)"),
    ("When getting information for key 'x' in bucket 'bkt': AWS Error NETWORK_CONNECTION "
     "during HeadObject operation: curlCode: 7, Could not connect to server; Details: "
     "Failed to connect to 127.0.0.1:41721 after 0 ms: Couldn't connect to server",
     StorageUnavailable, "s3://nobucket/x: storage unavailable at http://127.0.0.1:41721 "
                         "while reading (NetworkConnection: curlCode: 7, Could not connect "
                         "to server); try again"),
    ("When getting information for key 'x' in bucket 'bkt': AWS Error NETWORK_CONNECTION "
     "during HeadObject operation: curlCode: 6, Could not resolve hostname; Details: x",
     StorageUnavailable, "curlCode: 6, Could not resolve hostname)"),
    ("When reading 'x': AWS Error SLOW_DOWN during GetObject operation: Please reduce your "
     "request rate.", StorageUnavailable, "(SlowDown: Please reduce your request rate)"),
    ("When reading 'x': AWS Error UNKNOWN (HTTP status 503) during GetObject operation: "
     "Service Unavailable", StorageUnavailable, "Unknown: Service Unavailable"),
    ("When reading 'x': AWS Error UNKNOWN (HTTP status 403) during GetObject operation: ",
     RootAccessDenied, "access denied (Unknown)"),
]


@pytest.mark.parametrize("message,kind,text", MESSAGES)
def test_fs_error_mapping(message, kind, text):
    error = fs_error(OSError(message), ROOT, "reading")
    assert type(error) is kind and text in str(error)
    assert "\n" not in str(error) and "Request ID" not in str(error)
    assert "Details" not in str(error)


def test_fs_error_other():
    error = fs_error(PermissionError(13, "Permission denied"), ROOT, "listing x")
    assert type(error) is StorageError and "listing x failed: Permission denied" in str(error)
