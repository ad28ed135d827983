"""A real S3 API on 127.0.0.1 for tests: moto's server in this process, port 0.

Import the fixtures into a test module (``from s3 import s3, s3_auth  # noqa: F401``).
``s3`` sets test credentials and ``AWS_ENDPOINT_URL`` (subprocesses inherit them), and
gives a ``S3Server``: ``.url``, ``.bucket(name)``, ``.upload(local_folder, dest)``,
``.stop()``/``.restart()``. ``s3_auth`` is the same server checking credentials.
Nothing here reaches the internet.
"""

from __future__ import annotations

import logging
import urllib.request

import pyarrow.fs as pafs
import pytest

moto_server = pytest.importorskip("moto.server")

KEY, SECRET = "testing", "testing"


class S3Server:
    def __init__(self, port: int = 0):
        self._server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port,
                                                      verbose=False)
        self.port = port

    def start(self) -> "S3Server":
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def restart(self) -> None:
        self.stop()
        self._server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                                      verbose=False)
        self._server.start()

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 region="us-east-1", access_key=KEY, secret_key=SECRET,
                                 connect_timeout=1, request_timeout=5,
                                 allow_bucket_creation=True)

    def bucket(self, name: str) -> str:
        self.filesystem().create_dir(name)
        return name

    def upload(self, folder, dest: str) -> None:
        """Copy a local folder (a data root or a session) to ``bucket/prefix``."""
        pafs.copy_files(str(folder), dest, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem())


def _reset_moto(server: S3Server) -> None:
    """Forget every bucket (moto's state is global to the process)."""
    request = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    try:
        yield server
    finally:
        _reset_moto(server)
        server.stop()


@pytest.fixture
def s3_auth(s3, monkeypatch):
    """The same server, checking credentials from now on: moto's switch is a setting
    of the process (``INITIAL_NO_AUTH_ACTION_COUNT``, read when moto is imported), and
    no key is known to it, so every request is refused as InvalidAccessKeyId."""
    import moto.settings
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return s3
