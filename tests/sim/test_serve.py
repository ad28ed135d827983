"""serve_sim: the loop behind 'wsrec sim', callable from Python."""

import socket
import subprocess
import sys
import threading

import pytest
from client_cases import CLIENTS
from websockets.sync.client import connect

from wsrec.errors import UsageError, WsrecError
from wsrec.sim import SIMULATORS, SimOptions, serve_sim

pytestmark = pytest.mark.timeout(60)


def serve_in_thread(venue, options=None, **kw):
    urls, errors, stop = [], [], threading.Event()
    ready = threading.Event()

    def run():
        try:
            serve_sim(venue, options, stop=stop, announce=False,
                      listening=lambda url: (urls.append(url), ready.set()), **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    return urls, errors, stop, thread


def test_serves_until_stopped():
    urls, errors, stop, thread = serve_in_thread("hyperliquid", SimOptions(rate=50))
    assert not errors and urls[0].startswith("ws://127.0.0.1:") and urls[0].endswith("/ws")
    with connect(urls[0], open_timeout=10) as ws:
        ws.send('{"method":"subscribe","subscription":{"type":"trades","coin":"BTC"}}')
        assert "subscriptionResponse" in ws.recv(timeout=10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and not errors


def test_refuses_options_and_addresses():
    with pytest.raises(UsageError, match="no error code 'zzz'") as caught:
        serve_sim("alpaca", SimOptions(error="zzz"))
    assert caught.value.param == "error"
    with pytest.raises(UsageError, match="no simulator for 'nowhere'"):
        serve_sim("nowhere")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _, errors, _, thread = serve_in_thread("flow", port=port)
        thread.join(10)
    assert isinstance(errors[0], WsrecError)
    assert str(errors[0]).startswith(f"cannot listen on 127.0.0.1:{port}: ")


def test_the_command_is_this_call():
    """'wsrec sim' announces its URL and ends cleanly on SIGTERM, as serve_sim does."""
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "sim", "vega"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("listening on ws://127.0.0.1:"), line
        assert line.rstrip().endswith("/api/v2/stream/trades"), line
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.stderr.close()


def test_dfuse_announces_its_demo_token_a_given_one_stays_masked(capsys):
    """'wsrec sim dfuse' prints the URL a client connects to as printed: the demo token
    is no secret (a masked one would be refused); a token the options name is one."""
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "sim", "dfuse", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.rstrip().endswith("/v1/stream?token=sim.jwt.token"), line
        with connect(line.split()[-1], open_timeout=10) as ws:
            assert CLIENTS["dfuse"](ws)
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.stderr.close()
    from wsrec.venues.dfuse import TOKEN_ENV
    stop = threading.Event()
    thread = threading.Thread(target=serve_sim, args=("dfuse", SimOptions(
        rate=50, credentials={TOKEN_ENV: "my.real.jwt"})), kwargs={
        "stop": stop, "listening": lambda url: stop.set()}, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    err = capsys.readouterr().err
    assert "/v1/stream?token=***" in err and "my.real.jwt" not in err


@pytest.mark.parametrize("venue", sorted(CLIENTS))
def test_the_announced_url_is_a_working_session(venue):
    """What 'listening on URL' says is what a client connects to: the venue's path
    included (the bare ws://HOST:PORT is answered with 404 by every venue)."""
    assert sorted(CLIENTS) == sorted(SIMULATORS)
    urls, errors, stop, thread = serve_in_thread(venue, SimOptions(rate=50))
    try:
        assert not errors
        base = "/".join(urls[0].split("/")[:3])
        assert urls[0] != base
        with pytest.raises(Exception, match="404"):
            connect(base, open_timeout=10).close()
        with connect(urls[0], open_timeout=10) as ws:
            assert CLIENTS[venue](ws)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not errors


def test_dfuse_url_carries_the_token_the_simulator_takes():
    from wsrec.venues.dfuse import TOKEN_ENV
    urls, errors, stop, thread = serve_in_thread(
        "dfuse", SimOptions(rate=50, credentials={TOKEN_ENV: "a.b/c.d"}))
    try:
        assert urls[0].endswith("/v1/stream?token=a.b%2Fc.d"), urls
        with connect(urls[0], open_timeout=10) as ws:
            assert CLIENTS["dfuse"](ws)
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.parametrize("venue", sorted(SIMULATORS))
def test_the_command_help_lists_each_venues_paths(venue):
    """'wsrec sim --help' names every path the venue's server takes (Vega's streams by
    their common prefix) and marks the default where there are several."""
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    text = CliRunner().invoke(cli, ["sim", "--help"], terminal_width=200).output
    block = text.split("The paths each venue serves:")[1].split("Example:")[0]
    entries: dict[str, str] = {}
    rows = [row for row in block.splitlines() if row.strip()]
    indent = min(len(row) - len(row.lstrip()) for row in rows)
    for row in rows:
        if not row[indent].isspace():   # 'venue  paths', then more paths further in
            name, _, row = row.strip().partition(" ")
            entries[name] = ""
        entries[name] += " " + row.strip()
    assert sorted(entries) == sorted(SIMULATORS)
    line = entries[venue]
    server = SIMULATORS[venue].server
    assert server.default_path and server.refuse(server.default_path) is None
    for path in server.paths:
        assert server.refuse(path.replace("JWT", "x.y.z")) is None
        shown = "/api/v2/stream/STREAM" if venue == "vega" else path
        assert shown in line, (path, line)
    assert len(server.paths) == 1 or "(default" in line
