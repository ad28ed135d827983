"""serve_sim: the loop behind 'wsrec sim', callable from Python."""

import socket
import subprocess
import sys
import threading

import pytest
from websockets.sync.client import connect

from wsrec.errors import UsageError, WsrecError
from wsrec.sim import SimOptions, serve_sim

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
    assert not errors and urls[0].startswith("ws://127.0.0.1:")
    with connect(urls[0] + "/ws", open_timeout=10) as ws:
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
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.stderr.close()
