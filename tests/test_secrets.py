"""Secrets never reach the disk, the manifest, a row, stdout or stderr, in any encoding.

Unit tests of ``wsrec.secrets``, then end to end through the CLI: every venue with
credentials (Alpaca key and secret from the environment, by message and by headers;
a dfuse token with ``/ + =``), and ``record url`` with a query token and api_key,
``user:password@``, a JSON ``--send`` auth message, a plain-text ``--send`` and a
``--redact NAME`` parameter, against the simulators and a local server on 127.0.0.1.
Each secret is searched for in each encoding in every byte under the data root (the
Parquet parts decoded, too) and in everything the command printed.
"""

import asyncio
import base64
import json
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.secrets import REDACTED, Redactor, encodings, is_secret_name, redact, redact_url

pytestmark = pytest.mark.timeout(120)


# -- the oracle: how a secret may show up -------------------------------------------------

def encoded_forms(secret: str) -> dict[str, bytes]:
    """Each encoding of ``secret`` the tests look for (written independently of
    ``wsrec.secrets.encodings``)."""
    raw = secret.encode()
    forms = {
        "raw": raw,
        "quote": quote(secret, safe="").encode(),
        "quote-slash": quote(secret).encode(),
        "quote_plus": quote_plus(secret).encode(),
        "base64": base64.b64encode(raw),
        "base64-nopad": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw),
        "base64url-nopad": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "json": json.dumps(secret)[1:-1].encode(),
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
    }
    return forms


def everything_under(root: Path) -> bytes:
    """Every byte of every file under ``root``, plus the decoded content of the Parquet
    parts and every row of every session (payloads are compressed on disk)."""
    chunks = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file():
            continue
        chunks.append(path.read_bytes())
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for name in table.column_names:
                if pa.types.is_temporal(table.schema.field(name).type):
                    continue
                for value in table.column(name).to_pylist():
                    chunks.append(value if isinstance(value, bytes) else repr(value).encode())
    for manifest in Path(root).rglob("session.json"):
        session = wsrec.open_session(manifest.parent)
        for f in session.frames(direction="in,out,event"):
            chunks.append(f.payload)
    return b"\n".join(chunks)


def assert_nowhere(secrets: dict[str, str], *blobs: bytes) -> int:
    """No encoding of any secret in any blob; returns the number of (secret, encoding)
    pairs checked."""
    blob = b"\n".join(blobs)
    checked = 0
    for name, secret in secrets.items():
        for how, form in encoded_forms(secret).items():
            assert form not in blob, f"{name} found {how}-encoded: {form!r}"
            checked += 1
    return checked


def run_cli(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env or {})
    return result


# -- unit: names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "token", "access_token", "X-Auth-Token", "apiKey", "api_key", "APIKEY", "key", "secret",
    "client_secret", "password", "passwd", "passphrase", "auth", "Authorization",
    "signature", "sig", "jwt", "session", "sessionId", "credential", "credentials",
    "header.X-Api-Key", "header.Cookie", "private_key", "refresh_token"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "nSigFigs", "author", "authority", "keywords", "signal", "design", "public_key",
    "pubkey", "tokens", "token_address", "symbol", "channel", "coin", "marketIds", "feed",
    "op", "type", "send", "url", "interval", "user"])
def test_harmless_names(name):
    assert not is_secret_name(name)


def test_extra_names_win_over_the_exceptions():
    assert is_secret_name("acct_no", ["acct"]) and not is_secret_name("acct_no")
    assert is_secret_name("nSigFigs", ["sigfigs"])


# -- unit: URLs, text, messages -------------------------------------------------------------

def test_urls_lose_user_info_and_secret_parameters():
    url = ("wss://alice:p%40ss@host.test:443/v1/stream?token=a%2Fb%2Bc%3D&Api_Key=k+1"
           "&market=BTC&auth=headers&sig=&x=1#access_token=frag")
    assert redact_url(url) == ("wss://***@host.test:443/v1/stream?token=***&Api_Key=***"
                               "&market=BTC&auth=headers&sig=&x=1#access_token=***")
    assert redact_url("ws://h/?acct=42424242", names=["acct"]) == "ws://h/?acct=***"
    # not URLs: left alone; a bad URL is still redacted
    assert redact_url("no url here") == "no url here"
    assert redact_url("ws://u:pw@[::1/?token=zz") == "ws://***@[::1/?token=***"


def test_public_values_are_kept_and_never_learned():
    """A demo token (a simulator's, a replay's placeholder) stays in the URL a client must
    use; a real secret in the same text is masked all the same."""
    r = Redactor(public=["sim.jwt.token", "a b"])
    assert r.text("listening on ws://h:1/v1/stream?token=sim.jwt.token") == \
        "listening on ws://h:1/v1/stream?token=sim.jwt.token"
    assert r.text("ws://h/?token=a+b&key=a%20b") == "ws://h/?token=a+b&key=a%20b"
    assert r.text("ws://h/?token=real.jwt.value&other=sim.jwt.token") == \
        "ws://h/?token=***&other=sim.jwt.token"
    assert r.text("then real.jwt.value again") == "then *** again"   # learned, that one
    assert "sim.jwt.token" not in r.values and r.values == ["real.jwt.value"]
    r.add("sim.jwt.token")
    assert r.values == ["real.jwt.value"]
    assert Redactor().text("ws://h/?token=sim.jwt.token") == "ws://h/?token=***"
    assert redact_url("ws://u:pw@h/?token=TOKEN&api_key=k", public=["TOKEN"]) == \
        "ws://***@h/?token=TOKEN&api_key=***"


def test_values_found_by_name_are_removed_everywhere_in_every_encoding():
    r = Redactor()
    r.text("ws://h/?token=" + quote("s3cr/t+val=", safe=""))
    assert "s3cr/t+val=" in r.values
    secret = "s3cr/t+val="
    for how, form in encoded_forms(secret).items():
        assert r.bytes(b"<" + form + b">") == b"<***>", how
        assert r.text("<" + form.decode() + ">") == "<***>", how
    # inside a longer base64 text (a Basic authorization), at every alignment
    for prefix in (b"", b"u", b"us", b"use"):
        blob = base64.b64encode(prefix + b":" + secret.encode() + b"-tail")
        assert b"***" in r.bytes(blob), prefix


def test_short_values_are_redacted_by_name_only():
    r = Redactor()
    assert r.text("ws://h/?key=abc&q=abc") == "ws://h/?key=***&q=abc"
    assert r.values == []   # "abc" would mangle everything


def test_json_messages_keep_their_bytes_except_the_secrets():
    r = Redactor()
    sent = (b'{ "op": "auth",\n  "args": {"apiKey": "K-12345", "passphrase": "p\\"q\\\\r",'
            b' "nested": {"secret": {"a": "long-inner-value", "b": "x"}}},'
            b' "echo": "K-12345", "list": [1, 2] }')
    stored = r.message(sent)
    assert stored == (b'{ "op": "auth",\n  "args": {"apiKey": "***", "passphrase": "***",'
                      b' "nested": {"secret": {"a": "***", "b": "***"}}},'
                      b' "echo": "***", "list": [1, 2] }')   # cut out in place
    assert b"K-12345" not in stored and b"long-inner-value" not in stored
    assert b'p\\"q' not in stored and "p\"q\\r" in r.values
    # a number under a secret name: re-serialised, redacted
    assert json.loads(r.message(b'{"pin_code": 1, "token": 123456789}')) == \
        {"pin_code": 1, "token": REDACTED}
    # modes are kept; nothing secret: the bytes are untouched
    assert r.message(b'{"auth" : "headers"}') == b'{"auth" : "headers"}'
    assert r.message(b'{"method":"subscribe","coin":"BTC"}') == \
        b'{"method":"subscribe","coin":"BTC"}'
    # not JSON: the known values only
    assert r.message(b"LOGIN K-12345 now") == b"LOGIN *** now"
    assert r.message("text K-12345") == "text ***"
    # binary (not UTF-8) survives byte for byte
    assert r.message(b"\xff\x00K-12345\xfe") == b"\xff\x00***\xfe"


def test_redact_arguments():
    args = {"venue": "url", "url": "ws://bob:hunter22@h/?token=T0K3N-1&x=1",
            "params": {"send": ['{"op":"login","password":"pw-98765"}', "raw pw-98765"],
                       "header.X-Api-Key": "hdr-key-1", "nSigFigs": "5", "auth": "headers",
                       "header.Authorization": "Bearer brr-token-77"},
            "sim": False, "max": 3}
    out = redact(args)
    text = json.dumps(out)
    for secret in ("hunter22", "T0K3N-1", "pw-98765", "hdr-key-1", "brr-token-77"):
        assert secret not in text
    assert out["params"]["nSigFigs"] == "5" and out["params"]["auth"] == "headers"
    assert out["url"] == "ws://***@h/?token=***&x=1"
    assert out["params"]["send"] == ['{"op":"login","password":"***"}', "raw ***"]
    assert out["sim"] is False and out["max"] == 3
    assert redact({"acct": "A-1234"}, names=["acct"]) == {"acct": REDACTED}


def test_encodings_cover_the_oracle():
    secret = 'a/b+c="d"\\é'
    assert set(f.decode() for f in encoded_forms(secret).values()) <= encodings(secret)


# -- end to end: the CLI against the simulators and a local server -------------------------

ALPACA = {"APCA_API_KEY_ID": 'PK/Test+Key=="x"', "APCA_API_SECRET_KEY": "sk/Sec+ret\\val=ue"}
DFUSE_TOKEN = "eyJhbGciOi/J+IUz=.eyJzdWIi/Oi+Jk=.c2ln/bmF+0dXJl=="


@pytest.fixture
def sim_url():
    from wsrec.sim import SimOptions, SimThread, get_simulator
    threads = []

    def start(venue):
        thread = SimThread(get_simulator(venue, SimOptions(rate=100)))
        threads.append(thread)
        return thread.start(), thread.simulator

    yield start
    for t in threads:
        t.stop()


@pytest.mark.parametrize("auth", ["message", "headers"])
def test_alpaca_credentials_from_the_environment(tmp_path, sim_url, auth):
    url, sim = sim_url("alpaca")
    data = tmp_path / "data"
    result = run_cli("record", "alpaca", "-s", "FAKEPACA", "--url", url, "--auth", auth,
                     "--duration", "1s", "--data", data, "--json", env=ALPACA)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "complete"
    received = b"".join(sim.received[0])
    if auth == "message":   # the real credentials went on the wire ...
        assert json.loads(sim.received[0][0])["key"] == ALPACA["APCA_API_KEY_ID"]
        outbound = [f.payload for f in wsrec.open_session("alpaca", data=data)
                    .frames(direction="out")]
        assert json.loads(outbound[0]) == {"action": "auth", "key": REDACTED,
                                           "secret": REDACTED}
    else:
        assert b"PK/Test" not in received
    # ... and nothing kept them
    n = assert_nowhere({"key": ALPACA["APCA_API_KEY_ID"],
                        "secret": ALPACA["APCA_API_SECRET_KEY"]},
                       everything_under(data), result.stdout.encode(), result.stderr.encode())
    assert n == 20


def test_dfuse_token_with_url_special_characters(tmp_path, sim_url):
    url, sim = sim_url("dfuse")
    data = tmp_path / "data"
    result = run_cli("record", "dfuse", "-s", "eosio.token", "--url", url, "--duration", "1s",
                     "--data", data, env={"DFUSE_API_TOKEN": DFUSE_TOKEN})
    assert result.exit_code == 0, result.output
    session = wsrec.open_session("dfuse", data=data)
    assert session.rows() > 10 and "token=***" in session.manifest["connections"][0]["url"]
    n = assert_nowhere({"token": DFUSE_TOKEN}, everything_under(data),
                       result.stdout.encode(), result.stderr.encode())
    assert n == 10


URL_SECRETS = {"token": "tok/en+Value=1", "api_key": "key+Value/2==", "password": "p@ss:w/rd+3=",
               "send": 'send"Secret/+=\\4', "acct": "AcctSecret99"}


class LocalServer:
    """A websockets server on 127.0.0.1 in its own thread that checks the credentials
    arrived (query, Basic authorization, the auth message) and streams some frames;
    ``/reject`` refuses the upgrade with 401 echoing the token it got."""

    def __init__(self):
        self.seen = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def _reject(self, connection, request):
        if request.path.startswith("/reject"):
            from wsrec.sim.base import Simulator
            token = request.path.partition("token=")[2].partition("&")[0]
            return Simulator.http_error(401, f"invalid token {token} for this account")
        return None

    async def _handler(self, ws):
        self.seen.append((ws.request.path, ws.request.headers.get("Authorization")))
        self.seen.append(await ws.recv())
        for i in range(1000):
            await ws.send('{"i":%d}' % i)
            await asyncio.sleep(0.01)

    async def _main(self):
        from websockets.asyncio.server import serve
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0,
                         process_request=self._reject) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


def _url(port, path="/feed"):
    s = URL_SECRETS
    return (f"ws://alice:{quote(s['password'], safe='')}@127.0.0.1:{port}{path}"
            f"?token={quote(s['token'], safe='')}&api_key={quote_plus(s['api_key'])}"
            f"&acct={s['acct']}&market=BTC")


def test_record_url_query_userinfo_send_and_redact_names(tmp_path):
    data = tmp_path / "data"
    auth = json.dumps({"op": "auth", "token": URL_SECRETS["send"], "market": "BTC"})
    with LocalServer() as server:
        result = run_cli("record", "url", _url(server.port), "--send", auth,
                         "--send", f"PLAIN {URL_SECRETS['token']}", "--redact", "acct",
                         "--duration", "1s", "--data", data, "--json", "--name", "local")
    assert result.exit_code == 0, result.output
    # the real secrets were used ...
    path, authorization = server.seen[0]
    assert quote(URL_SECRETS["token"], safe="") in path
    assert base64.b64decode(authorization.split()[1]).decode() == \
        "alice:" + URL_SECRETS["password"]
    assert json.loads(server.seen[1])["token"] == URL_SECRETS["send"]
    # ... and stored redacted
    session = wsrec.open_session("local", data=data)
    assert session.manifest["args"]["url"] == (
        f"ws://***@127.0.0.1:{server.port}/feed?token=***&api_key=***&acct=***&market=BTC")
    assert session.manifest["connections"][0]["url"] == session.manifest["args"]["url"]
    assert session.manifest["args"]["redact"] == ["acct"]
    outbound = [f.payload for f in session.frames(direction="out")]
    assert outbound == [b'{"op": "auth", "token": "***", "market": "BTC"}', b"PLAIN ***"]
    n = assert_nowhere(URL_SECRETS, everything_under(data), result.stdout.encode(),
                       result.stderr.encode())
    assert n == 50
    assert b"alice" not in everything_under(data)   # the whole user-info goes


def test_errors_and_stderr_never_carry_a_secret(tmp_path):
    """The server refuses the upgrade and echoes the token: the error event, the manifest's
    error and the CLI's error line are redacted."""
    data = tmp_path / "data"
    with LocalServer() as server:
        result = run_cli("record", "url", _url(server.port, "/reject"), "--redact", "acct",
                         "--data", data, "--name", "refused", "--max-retries", "0")
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr and "invalid token *** for this account" in \
        result.stderr
    session = wsrec.open_session("refused", data=data)
    assert session.status == "failed" and "invalid token ***" in session.manifest["error"]
    assert_nowhere(URL_SECRETS, everything_under(data), result.stdout.encode(),
                   result.stderr.encode())


@pytest.mark.parametrize("url", ["ws://alice:pw-secret-1@127.0.0.1:99999/?token=tok-secret-2",
                                 "ws://alice:pw-secret-1@[::1/?token=tok-secret-2"])
def test_usage_errors_print_no_secret(tmp_path, url):
    data = tmp_path / "data"
    result = run_cli("record", "url", url, "--data", data)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pw-secret-1" not in result.output and "tok-secret-2" not in result.output
    assert "***@" in result.output and not data.exists()
    result = run_cli("record", "alpaca", url, "--data", data)   # a stray URL argument
    assert result.exit_code == 2 and "pw-secret-1" not in result.output
