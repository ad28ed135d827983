import json

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.errors import UsageError
from wsrec.record.request import build_request


def record_cli(data, *args):
    result = CliRunner().invoke(cli, ["record", *args, "--data", str(data), "-q", "--json"])
    return result, json.loads(result.stdout) if result.stdout else None


def test_url_request_as_the_cli_builds_it(tmp_path):
    data = tmp_path / "data"
    result, summary = record_cli(data, "url", "ws://127.0.0.1:9/x", "--send", "a", "--send",
                                 "b", "-s", "X,Y", "-s", "Z", "--max-retries", "0")
    assert result.exit_code == 1 and summary["venue"] == "127.0.0.1"
    r = build_request("url", "ws://127.0.0.1:9/x", send=["a", "b"], symbols=["X,Y", "Z"])
    assert r.name == "127.0.0.1" and r.venue.name == "url"
    assert r.request.symbols == ["X", "Y", "Z"] and r.request.params == {"send": ["a", "b"]}
    assert wsrec.open_session("last", data=data).manifest["args"] == r.args


def test_alpaca_options_fold_into_params_as_in_the_cli(tmp_path):
    data = tmp_path / "data"
    result, _ = record_cli(data, "alpaca", "--sim", "-s", "FAKEPACA", "--feed", "test",
                           "--msgpack", "--auth", "headers", "-p", "symbol_limit=30",
                           "--max-frames", "5", "--sim-rate", "200", "--redact", "cookie")
    assert result.exit_code == 0, result.output
    r = build_request("alpaca", symbols="FAKEPACA", feed="test", msgpack=True, auth="headers",
                      params={"symbol_limit": "30"}, sim=True, redact=["cookie"])
    assert r.request.params == {"symbol_limit": "30", "feed": "test", "auth": "headers",
                                "msgpack": "true"}
    assert r.name is None and r.args["redact"] == ["cookie"]
    # the recorder adds what it learnt: the frames' binary encoding
    assert wsrec.open_session("alpaca", data=data).manifest["args"] == {**r.args,
                                                                        "binary": "msgpack"}


@pytest.mark.parametrize("kw,param,message", [
    (dict(venue="url", sim=True), "sim", "no simulator for a plain URL"),
    (dict(venue="alpaca", send=["x"]), "send", "only the url venue sends"),
    (dict(venue="url", url="ws://h/", name="a/b"), "name", "invalid name 'a/b'"),
    (dict(venue="hyperliquid", symbols="ok,\udcff"), "symbols", "is not valid UTF-8 text"),
    (dict(venue="nowhere"), None, "unknown venue 'nowhere'"),
])
def test_requests_no_recording_can_honour(kw, param, message):
    with pytest.raises(UsageError, match=message) as caught:
        build_request(**kw)
    assert caught.value.param == param


def test_names_default_as_in_the_cli():
    assert build_request("url", "wss://feed.example.test:9443/ws").name == \
        "feed.example.test"
    assert build_request("url", "wss://h/ws", name="").name == "h"
    assert build_request("url").name is None           # the venue says what is missing
    assert build_request("vega", name="mine").name == "mine"
