"""The service's config file: literal TOML in, checked dataclasses or a one-line error
naming the file, the line and the stream out. Nothing connects."""

import re
from pathlib import Path

import pytest

from wsrec.errors import UsageError
from wsrec.record.recorder import RecordOptions
from wsrec.service.config import (DEFAULT_KEYS, GLOBAL_KEYS, SECONDS, SIZES, STREAM_KEYS,
                                  StreamConfig, load_config, parse_config)
from wsrec.sim import SimOptions

ENV = {"TEAM2_KEY_ID": "AKTEAM2KEYID00001", "TEAM2_SECRET": "team2-secret-value-xyz",
       "HOOK_TOKEN": "hook-token-0123456789"}


def parse(text, path="/etc/wsrec/wsrec.toml", **kw):
    kw.setdefault("environ", ENV)
    return parse_config(text, path, **kw)


def error(text, **kw) -> str:
    with pytest.raises(UsageError) as caught:
        parse(text, **kw)
    message = str(caught.value)
    assert "\n" not in message
    return message


HL = """
[[stream]]
name = "hl"
venue = "hyperliquid"
symbols = ["BTC", "ETH"]
channels = "trades,l2Book"
"""


def test_a_minimal_stream_and_its_defaults():
    config = parse(HL)
    assert config.data == "wsrec-data" and config.spool is None and config.metrics is None
    assert config.log_format == "text"
    [s] = config.streams
    assert s == StreamConfig(name="hl", venue="hyperliquid", channels=("trades", "l2Book"),
                             symbols=("BTC", "ETH"), folder="hl",
                             options=RecordOptions(rotate="1d"))
    assert s.line == 2 and s.sim is None and s.serve == ()
    # the CLI's defaults: the same RecordOptions as 'wsrec record' without options
    assert s.options.backoff_initial == 0.5 and s.options.flush_interval == 1.0
    planned = s.request(ENV)
    assert planned.name == "hl" and planned.request.symbols == ["BTC", "ETH"]
    assert planned.args["venue"] == "hyperliquid" and planned.args["sim"] is False


def test_defaults_at_the_top_and_overrides_in_a_stream():
    config = parse("""
data = "/srv/wsrec"
spool = "spool"
s3_endpoint = "http://127.0.0.1:9000"
rotate = "1h"
watchdog = "45s"
heartbeat = 5
backoff = "250ms"
max_retries = 3
duration = "2h"
max_message_size = "1MiB"
flush_interval = 0.5
min_free = "5GB"
metrics = "127.0.0.1:9108"
log_format = "json"

[[stream]]
name = "a"
venue = "flow"

[[stream]]
name = "b"
venue = "vega"
channels = ["trades"]
rotate = "never"
watchdog = 0
max_retries = 0
folder = "vega"
sim = { rate = 5, drop_every = 10 }
min_free = 1000
""")
    assert config.data == "/srv/wsrec" and config.spool == "/etc/wsrec/spool"
    assert config.s3_endpoint == "http://127.0.0.1:9000"
    assert config.metrics == "127.0.0.1:9108" and config.log_format == "json"
    a, b = config.streams
    assert a.options == RecordOptions(rotate="1h", watchdog=45.0, heartbeat=5.0,
                                      backoff_initial=0.25, max_retries=3, duration=7200.0,
                                      max_message_size=1 << 20, flush_interval=0.5,
                                      spool="/etc/wsrec/spool",
                                      s3_endpoint="http://127.0.0.1:9000",
                                      min_free=5_000_000_000)
    assert a.folder == "a"
    assert b.options.rotate == "never" and b.options.watchdog == 0 and \
        b.options.max_retries == 0 and b.options.heartbeat == 5.0
    assert b.folder == "vega" and b.options.min_free == 1000
    assert b.sim == SimOptions(rate=5, drop_every=10)


def test_paths_are_relative_to_the_file_and_data_falls_back_to_the_caller():
    assert parse("data = 'd'\n" + HL).data == "/etc/wsrec/d"
    assert parse("data = 's3://bucket/raw'\n" + HL).data == "s3://bucket/raw"
    assert parse(HL, data="/from/cli").data == "/from/cli"
    assert parse("data = '/abs'\n" + HL, data="/from/cli").data == "/abs"


def test_lists_urls_and_shortcuts():
    config = parse("""
[[stream]]
url = "wss://example.test/ws"
name = "ex"
send = '{"op":"subscribe"}'
params = { "header.X-Client" = "wsrec", header.X-Other = "1" }

[[stream]]
name = "alp"
venue = "alpaca"
symbols = "FAKEPACA, AAPL"
feed = "iex"
auth = "headers"
msgpack = true
sim = true
""")
    ex, alp = config.streams
    assert ex.venue == "url" and ex.url == "wss://example.test/ws"
    assert ex.send == ('{"op":"subscribe"}',)
    assert ex.params == {"header.X-Client": "wsrec", "header.X-Other": "1"}
    assert alp.symbols == ("FAKEPACA", "AAPL") and alp.feed == "iex" and alp.msgpack
    assert alp.sim == SimOptions()
    assert "sim at the venue's pace" in alp.summary(ENV)
    planned = alp.request(ENV)
    assert planned.request.params == {"feed": "iex", "auth": "headers", "msgpack": "true"}


def test_secrets_come_from_the_environment_and_never_show():
    config = parse("""
[[stream]]
name = "team2"
venue = "alpaca"
symbols = ["AAPL"]
env = { APCA_API_KEY_ID = "TEAM2_KEY_ID", APCA_API_SECRET_KEY = "TEAM2_SECRET" }

[[stream]]
name = "hook"
url = "wss://hooks.example.test/feed"
params = { "header.X-Hook_env" = "HOOK_TOKEN", "header.X-Api-Key" = "literal-key-123456" }
""")
    team2, hook = config.streams
    request = team2.request(ENV).request
    assert request.env["APCA_API_KEY_ID"] == "AKTEAM2KEYID00001"
    assert request.env["APCA_API_SECRET_KEY"] == "team2-secret-value-xyz"
    assert hook.params_env == {"header.X-Hook": "HOOK_TOKEN"}
    assert hook.request(ENV).request.params["header.X-Hook"] == "hook-token-0123456789"
    assert "header.X-Hook" in hook.redacted_names
    shown = repr([s.describe(ENV) for s in config.streams]) + \
        "".join(s.summary(ENV) for s in config.streams) + repr(config)
    for secret in (*ENV.values(), "literal-key-123456"):
        assert secret not in shown
    assert "TEAM2_KEY_ID" in shown   # the variable's name is no secret


def test_a_syntax_error_carries_tomllibs_line_and_column():
    assert error("data = 'x'\nrotate = [1,\n[[stream]]\n") == \
        "/etc/wsrec/wsrec.toml:3:3: Invalid value"
    assert error("[[stream]]\nname = \"a\"\nname = \"b\"\n").startswith(
        "/etc/wsrec/wsrec.toml:3:")


@pytest.mark.parametrize("text,expected", [
    # unknown keys, with a did-you-mean, at their own line
    ("rotat = '1h'\n" + HL, "wsrec.toml:1: unknown key 'rotat'; did you mean 'rotate'?"),
    ("[defaults]\nx = 1\n" + HL, "wsrec.toml:1: unknown key 'defaults'"),
    ("name = 'x'\n" + HL, "wsrec.toml:1: unknown key 'name'; 'name' goes in a [[stream]] table"),
    (HL + "chanels = ['trades']\n",
     'wsrec.toml:7: [[stream]] "hl": unknown key \'chanels\'; did you mean \'channels\'?'),
    (HL + "data = 'x'\n", 'wsrec.toml:7: [[stream]] "hl": unknown key \'data\'; \'data\' is a '
                          'setting of the whole file (put it at the top)'),
    # the venue's own checks, at the key they are about
    (HL.replace("trades,l2Book", "trades,foo"),
     'wsrec.toml:6: [[stream]] "hl": hyperliquid: unknown channel(s) foo'),
    (HL + "[[stream]]\nname = 'f'\nvenue = 'flw'\n",
     'wsrec.toml:9: [[stream]] "f": venue: unknown venue \'flw\' (choose from alpaca, dfuse, '
     'flow, hyperliquid, url, vega); did you mean \'flow\'?'),
    (HL + "params = { nosuch = 1 }\n",
     'wsrec.toml:7: [[stream]] "hl": hyperliquid: unknown parameter(s) nosuch'),
    (HL + "[stream.params]\nnosuch = 1\n",
     'wsrec.toml:7: [[stream]] "hl": hyperliquid: unknown parameter(s) nosuch'),
    # values, as 'wsrec record' checks its options
    (HL + "watchdog = -1\n", 'wsrec.toml:7: [[stream]] "hl": watchdog: -1 is out of range'),
    (HL + "heartbeat = 0.05\n", "heartbeat: 0.05 is too short: give 0 (off) or at least 0.1"),
    (HL + "backoff = 0\n", "backoff: 0 is out of range (more than 0 and at most 86400)"),
    (HL + "backoff = 'soon'\n", "backoff: not a duration: 'soon'"),
    (HL + "duration = '0s'\n", "duration: '0s' must be more than 0 and at most 10 years"),
    (HL + "max_frames = 0\n", "max_frames: expected a whole number of at least 1, not 0"),
    (HL + "max_retries = true\n", "max_retries: expected a whole number of at least 0"),
    (HL + "max_message_size = '1KB'\n", "max_message_size: 1000 bytes is out of range"),
    (HL + "rotate = '2h'\n", "rotate: '2h' is not one of 1h, 1d, never"),
    (HL.replace('symbols = ["BTC", "ETH"]', "symbols = 5"),
     'wsrec.toml:5: [[stream]] "hl": symbols: expected a string or an array of strings'),
    (HL + "sim = { rat = 5 }\n", "sim: unknown key 'rat'"),
    ("[[stream]]\nname = 'f'\nvenue = 'flow'\nsim = { error = 'nope' }\n",
     "wsrec.toml:4: [[stream]] \"f\": sim: flow simulator: the flow simulator has no error "
     "code 'nope'"),
    (HL + "serve = 'http://x'\n", "serve: unknown target 'http://x'"),
    (HL + "msgpack = 'yes'\n", "msgpack: expected true or false, not a string"),
    ("metrics = 'localhost'\n" + HL, "wsrec.toml:1: metrics: 'localhost' is not HOST:PORT"),
    ("log_format = 'xml'\n" + HL, "wsrec.toml:1: log_format: 'xml' is not one of text, json"),
    ("data = 'http://x/y'\n" + HL, "wsrec.toml:1: data:"),
    ("s3_endpoint = 'ftp://x'\n" + HL, "wsrec.toml:1: s3_endpoint: 'ftp://x' is not an http"),
    ("min_free = 'lots'\n" + HL, "wsrec.toml:1: min_free: 'lots' is not a size"),
    # what a stream needs
    ("[[stream]]\nvenue = 'flow'\n", 'wsrec.toml:1: [[stream]] #1: every [[stream]] needs a name'),
    ("[[stream]]\nname = 'x'\n", 'wsrec.toml:1: [[stream]] "x": give venue = "..."'),
    ("[[stream]]\nname = 'a b'\nvenue = 'flow'\n",
     'wsrec.toml:2: [[stream]] "a b": name: invalid name \'a b\''),
    (HL + "[[stream]]\nname = 'hl'\nvenue = 'flow'\n",
     'wsrec.toml:8: [[stream]] "hl": the name is already used by the stream at line 2'),
    ("[[stream]]\nname = 'a'\nvenue = 'flow'\nfolder = 'last'\n",
     'wsrec.toml:4: [[stream]] "a": folder: invalid folder \'last\''),
    ("[[stream]]\nname = 'u'\nvenue = 'url'\n", 'wsrec.toml:1: [[stream]] "u": url: give the '
                                                'endpoint'),
    ("[[stream]]\nname = 'u'\nurl = 'http://x'\n",
     'wsrec.toml:3: [[stream]] "u": url: \'http://x\' is not a ws:// or wss:// URL'),
    ("[[stream]]\nname = 'u'\nurl = 'ws://x'\nsim = true\n",
     'wsrec.toml:4: [[stream]] "u": url: there is no simulator for a plain URL'),
    ("[[stream]]\nname = 'f'\nvenue = 'flow'\nsend = 'x'\n",
     'wsrec.toml:4: [[stream]] "f": send: only the url venue sends messages'),
    ("[[stream]]\nname = 'a'\nvenue = 'alpaca'\nsymbols = 'AAPL'\n",
     'wsrec.toml:1: [[stream]] "a": alpaca: set APCA_API_KEY_ID (your Alpaca API '
     'credentials), or record from the simulator with sim'),
    ("[[stream]]\nname = 'a'\nvenue = 'alpaca'\nsymbols = 'AAPL'\nenv = { APCA_KEY = 'X' }\n",
     "wsrec.toml:5: [[stream]] \"a\": env: alpaca reads no credential 'APCA_KEY'"),
    ("[[stream]]\nname = 'a'\nvenue = 'alpaca'\nsymbols = 'AAPL'\n"
     "env = { APCA_API_KEY_ID = 'UNSET_VAR', APCA_API_SECRET_KEY = 'TEAM2_SECRET' }\n",
     'wsrec.toml:5: [[stream]] "a": env.APCA_API_KEY_ID: environment variable UNSET_VAR is '
     'not set'),
    ("[[stream]]\nname = 'u'\nurl = 'wss://x.test/'\nparams = { token_env = 'NOPE' }\n",
     'wsrec.toml:4: [[stream]] "u": params.token_env: environment variable NOPE is not set'),
    ("", "wsrec.toml: no [[stream]] table"),
    ("stream = 1\n", "wsrec.toml:1: 'stream' must be [[stream]] tables"),
])
def test_every_error_names_its_line(text, expected):
    message = error(text)
    assert message.startswith("/etc/wsrec/") and expected in message, message
    assert not re.search(r"--[a-z]", message), message   # the file's words, not options'


def test_the_line_of_a_later_stream_and_of_a_key_below_a_multiline_string():
    text = HL + '''
[[stream]]
name = "u"
url = "wss://x.test/"
send = """
watchdog = -1
"""
watchdog = -1
'''
    assert error(text).startswith('/etc/wsrec/wsrec.toml:14: [[stream]] "u": watchdog')


def _served(name, serve):
    return f"[[stream]]\nname = '{name}'\nvenue = 'flow'\nserve = {serve}\n"


@pytest.mark.parametrize("first,second,said", [
    ('"ws://127.0.0.1:8765"', '"ws://127.0.0.1:8765/other"', "(as ws://127.0.0.1:8765)"),
    ('"tcp://127.0.0.1:9000"', '["unix:/tmp/b.sock", "ws://localhost:9000"]',
     "(as tcp://127.0.0.1:9000)"),
    ('"tcp://0.0.0.0:9000"', '"ws://10.1.2.3:9000"', "(as tcp://0.0.0.0:9000)"),
    ('"unix:/tmp/a.sock"', '"unix:/tmp/./a.sock"', "(as unix:/tmp/a.sock)"),
])
def test_serve_targets_are_unique_across_the_streams(first, second, said):
    """Two streams listening on one port or socket path would pass the check and fail at
    the start ("cannot listen"): a usage error naming the line of the second's serve."""
    message = error(_served("a", first) + "\n" + _served("b", second))
    assert message.startswith('/etc/wsrec/wsrec.toml:9: [[stream]] "b": serve: '), message
    assert f"is already served by the stream at line 1 {said}: the second could not " \
        "listen; give each its own port or path (port 0 picks a free one)" in message


def test_serve_targets_that_can_share_and_a_target_twice_in_one_stream():
    config = parse(_served("a", '["ws://127.0.0.1:0", "tcp://127.0.0.1:9000"]') +
                   _served("b", '["ws://127.0.0.1:0", "tcp://10.1.2.3:9000", "unix:/tmp/b"]'))
    assert [len(s.serve) for s in config.streams] == [2, 3]   # port 0: a free one each
    message = error(_served("a", '["unix:/tmp/a", "unix:/tmp/a"]'))
    assert message == ('/etc/wsrec/wsrec.toml:4: [[stream]] "a": serve: unix:/tmp/a is served '
                       'twice in this stream: the second could not listen; give each its '
                       'own port or path (port 0 picks a free one)')


def test_streams_as_an_inline_array_are_named_by_number():
    message = error("stream = [{ name = 'a', venue = 'flow' }, { venue = 'flow' }]\n")
    assert message.startswith("/etc/wsrec/wsrec.toml:1: [[stream]] #2: every [[stream]]")


def test_a_file_that_cannot_be_read(tmp_path):
    with pytest.raises(UsageError, match="cannot read config .*nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"data = '\xff'\n")
    with pytest.raises(UsageError, match="bad.toml: not UTF-8 text"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text("data = 'd'\n" + HL)
    assert load_config(good).data == str(tmp_path / "d")


def test_changes_name_what_differs():
    a = parse(HL).streams[0]
    b = parse(HL.replace("ETH", "SOL") + "watchdog = 5\n").streams[0]
    assert a.changes(b) == ["symbols", "watchdog"]
    assert a == parse("\n\n" + HL).streams[0]   # the line is no change


def test_the_keys_are_the_record_commands_options():
    """Every 'wsrec record' option has a config key of the same name (or is the file's
    business), and the config's bounds are the option's."""
    import click

    from wsrec.cli.commands import cli
    record = cli.commands["record"]
    keys = set(GLOBAL_KEYS + DEFAULT_KEYS + STREAM_KEYS)
    cli_only = {"venue", "url_option", "sim_rate", "sends", "redact_names", "params",
                "quiet", "as_json", "config", "url", "name"}
    for param in record.params:
        assert param.name in keys or param.name in cli_only, param.name
    for param in record.params:
        if param.name in SECONDS:
            low, high, low_open = SECONDS[param.name]
            assert isinstance(param.type, click.FloatRange), param.name
            assert (param.type.min, param.type.max, param.type.min_open) == \
                (low, high, low_open), param.name
        if param.name in SIZES and isinstance(param.type, click.IntRange):
            assert (param.type.min, param.type.max) == SIZES[param.name]


def test_the_example_file_in_the_docs_checks():
    path = Path(__file__).resolve().parents[2] / "docs" / "wsrec.example.toml"
    config = load_config(path, environ=ENV)
    assert [s.venue for s in config.streams] == ["hyperliquid", "alpaca", "flow", "url"]
    assert config.streams[2].options.rotate == "1h"
    assert all(s.options.max_retries == 20 for s in config.streams)
