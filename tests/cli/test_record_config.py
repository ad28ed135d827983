"""'wsrec config check' and 'wsrec record --config' through the CLI; the example file of
the docs checked and run from the simulators (its url stream from a local server)."""

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed

import wsrec
from conftest import all_bytes_under
from wsrec.cli.commands import cli

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "wsrec.example.toml"
SECRETS = {"TEAM2_KEY_ID": "AKTEAM2KEY0000001", "TEAM2_SECRET": "team2-secret-abcdef",
           "HOOK_TOKEN": "hook-token-9876543210"}
TWO = """
data = "data"
duration = "1s"

[[stream]]
name = "fl"
venue = "flow"
sim = { rate = 100 }

[[stream]]
name = "hl"
venue = "hyperliquid"
symbols = "BTC"
channels = ["trades"]
sim = true
"""


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(cli, [str(a) for a in args],
                             env={"WSREC_DATA": str(tmp_path / "fallback"), **(env or {})})
    return invoke


def test_config_check_lists_the_streams_without_their_secrets(run):
    result = run("config", "check", EXAMPLE, env=SECRETS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["hl-majors", "alpaca-iex",
                                                      "flow-blocks", "example-feed"]
    assert lines[0] == ("hl-majors: hyperliquid, channels trades,l2Book, symbols BTC,ETH,SOL, "
                        "params nSigFigs=5, folder hl-majors, rotate 1d")
    assert "header.X-Api-Key=***" in lines[3]
    assert result.stderr == f"ok: 4 stream(s) into {EXAMPLE.parent / 'wsrec-data'}\n"
    as_json = run("config", "check", EXAMPLE, "--json", env=SECRETS)
    assert as_json.exit_code == 0
    doc = json.loads(as_json.stdout)
    assert [s["name"] for s in doc["streams"]] == [line.split(":")[0] for line in lines]
    assert doc["streams"][1]["env"] == {"APCA_API_KEY_ID": "TEAM2_KEY_ID",
                                        "APCA_API_SECRET_KEY": "TEAM2_SECRET"}
    for secret in SECRETS.values():
        assert secret not in result.output + as_json.output


def test_config_check_names_the_line_of_a_problem(run, tmp_path):
    (tmp_path / "w.toml").write_text(TWO.replace('channels = ["trades"]',
                                                 'channels = ["trade"]'))
    result = run("config", "check", "w.toml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == (
        'Error: w.toml:14: [[stream]] "hl": hyperliquid: unknown channel(s) trade (choose '
        'from ' + result.stderr.split("(choose from ")[1].splitlines()[0])
    missing = run("config", "check", "nope.toml")
    assert missing.exit_code == 2 and "cannot read config nope.toml" in missing.stderr
    # the credentials a venue needs are checked too
    no_keys = run("config", "check", EXAMPLE, env={"TEAM2_KEY_ID": None})
    assert no_keys.exit_code == 2
    assert 'wsrec.example.toml:40: [[stream]] "alpaca-iex": env.APCA_API_KEY_ID: environment ' \
           'variable TEAM2_KEY_ID is not set' in no_keys.stderr


def test_record_config_records_every_stream_and_reports_each(run, tmp_path):
    (tmp_path / "w.toml").write_text(TWO)
    result = run("record", "--config", "w.toml", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert sorted(r["stream"] for r in results) == ["fl", "hl"]
    for r in results:
        assert r["status"] == "complete" and r["stopped_by"] == "duration"
        assert set(r) >= {"path", "venue", "id", "frames_in", "bytes_in", "seconds"}
        assert wsrec.open_session(r["path"]).status == "complete"
        assert Path(r["path"]).is_relative_to(tmp_path / "data")
    summary = [line for line in result.stderr.splitlines() if ": complete: " in line]
    assert sorted(line.split(":")[0] for line in summary) == ["fl", "hl"]
    quiet = run("record", "--config", "w.toml", "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    assert not [line for line in quiet.stderr.splitlines() if ": complete: " in line]


def test_config_check_takes_data_as_record_config_does(run, tmp_path):
    """``--data`` is the data root when the file names none (as for ``record --config``),
    before $WSREC_DATA; the file's own ``data`` wins over both."""
    (tmp_path / "w.toml").write_text(TWO.replace('data = "data"\n', ""))
    given = run("config", "check", "w.toml", "--data", tmp_path / "given")
    assert given.exit_code == 0, given.output
    assert given.stderr == f"ok: 2 stream(s) into {tmp_path / 'given'}\n"
    as_json = run("config", "check", "w.toml", "--data", tmp_path / "given", "--json")
    assert json.loads(as_json.stdout)["data"] == str(tmp_path / "given")
    fallback = run("config", "check", "w.toml")
    assert fallback.stderr == f"ok: 2 stream(s) into {tmp_path / 'fallback'}\n"
    (tmp_path / "w.toml").write_text(TWO)
    assert run("config", "check", "w.toml", "--data", tmp_path / "given").stderr == \
        f"ok: 2 stream(s) into {tmp_path / 'data'}\n"


def test_json_logs_carry_the_summaries_and_config_checks_line(run, tmp_path):
    """``--log-format json``: every stderr line is JSON, the per-stream summaries of
    ``record --config`` and the ``ok:`` line of ``config check`` too."""
    from wsrec.logs import set_format

    (tmp_path / "w.toml").write_text(TWO)
    try:
        checked = run("--log-format", "json", "config", "check", "w.toml")
        recorded = run("--log-format", "json", "record", "--config", "w.toml")
    finally:
        set_format("text")   # the command set it process-wide
    assert checked.exit_code == 0 and recorded.exit_code == 0, recorded.output
    [ok] = [json.loads(line) for line in checked.stderr.splitlines()]
    assert ok["msg"] == f"ok: 2 stream(s) into {tmp_path / 'data'}" and ok["streams"] == 2
    lines = [json.loads(line) for line in recorded.stderr.splitlines()]
    summaries = {line["stream"]: line for line in lines if ": complete: " in line["msg"]}
    assert sorted(summaries) == ["fl", "hl"]
    for name, line in summaries.items():
        assert line["msg"].startswith(f"{name}: complete: ") and line["level"] == "info"
        assert line["status"] == "complete" and line["stopped_by"] == "duration"
        assert line["frames_in"] > 0 and wsrec.open_session(line["path"]).venue == name


def test_record_config_quiet_reaches_the_relays(run, tmp_path):
    """--quiet: the streams' relays write no line either (here: the stale socket one
    replaces, as a client's connect or drop would)."""
    import socket

    path = tmp_path / "r.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))   # left by a server that did not stop cleanly
    stale.close()
    (tmp_path / "w.toml").write_text(TWO.split("\n[[stream]]\nname = \"hl\"")[0]
                                     + f'serve = "unix:{path}"\n')
    result = run("record", "--config", "w.toml", "--quiet")
    assert result.exit_code == 0, result.output
    assert "note: replaced" not in result.stderr and "fl: complete: " not in result.stderr


def test_record_config_exits_1_when_a_stream_failed(run, tmp_path):
    (tmp_path / "w.toml").write_text(TWO + """
[[stream]]
name = "bad"
venue = "flow"
sim = { error = "400" }
""")
    result = run("record", "--config", "w.toml")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1] == "Error: 1 of 3 stream recording(s) failed: bad"
    assert any(line.startswith("bad: failed:") for line in result.stderr.splitlines())


@pytest.mark.parametrize("args,message", [
    (["--config", "w.toml", "--duration", "5s"], "leave out --duration (set it in the file)"),
    (["--config", "w.toml", "flow"], "leave out VENUE"),
    (["--config", "w.toml", "--sim"], "leave out --sim"),
    ([], "Missing argument 'VENUE' (or give --config FILE)."),
    (["--config", "nope.toml"], "cannot read config nope.toml"),
])
def test_record_config_usage_errors(run, tmp_path, args, message):
    (tmp_path / "w.toml").write_text(TWO)
    result = run("record", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "data").exists()


@pytest.fixture
def endpoint():
    """A plain WebSocket server on 127.0.0.1: acks what it is sent, then counts."""
    from websockets.sync.server import serve
    seen = {"headers": [], "messages": []}
    stop = threading.Event()

    def handler(ws):
        seen["headers"].append(dict(ws.request.headers))
        try:
            seen["messages"].append(ws.recv(timeout=10))
            i = 0
            while not stop.is_set():
                ws.send(json.dumps({"i": i}))
                i += 1
                stop.wait(0.01)
        except ConnectionClosed:
            pass

    server = serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/v1/ws", seen
    finally:
        stop.set()
        server.shutdown()
        thread.join(10)


def test_the_example_file_records_from_the_simulators(run, tmp_path, endpoint):
    url, seen = endpoint
    text = EXAMPLE.read_text()
    assert 'url = "wss://stream.example.test/v1/ws"' in text
    text = text.replace('url = "wss://stream.example.test/v1/ws"', f'url = "{url}"\nsim = false')
    (tmp_path / "wsrec.toml").write_text('sim = true\nduration = "2s"\n' + text)
    result = run("record", "--config", "wsrec.toml", "--json", env=SECRETS)
    assert result.exit_code == 0, result.output
    results = {r["stream"]: r for r in json.loads(result.stdout)}
    assert sorted(results) == sorted(["hl-majors", "alpaca-iex", "flow-blocks", "example-feed"])
    for r in results.values():
        assert r["status"] == "complete" and r["frames_in"] > 2, r
        s = wsrec.open_session(r["path"])
        assert s.venue == r["stream"] and s.status == "complete"
        assert Path(r["path"]).is_relative_to(tmp_path / "wsrec-data")
    assert wsrec.open_session(results["flow-blocks"]["path"]).manifest["args"]["venue"] == "flow"
    # the url stream sent its message and the header read from HOOK_TOKEN
    assert seen["messages"][0] == '{"op":"subscribe","channel":"ticker"}'
    assert {k.lower(): v for k, v in seen["headers"][0].items()}["x-api-key"] == \
        SECRETS["HOOK_TOKEN"]
    assert "not active" not in result.stderr
    stored = all_bytes_under(tmp_path / "wsrec-data")
    for secret in SECRETS.values():
        assert secret.encode() not in stored
        assert secret not in result.output


def test_progress_shows_every_stream_on_one_line():
    import io

    from wsrec.cli.commands import _StreamsProgress
    out = io.StringIO()
    progress = _StreamsProgress(quiet=False, file=out, terminal=True, interval=0)
    progress([{"stream": "a", "state": "running", "frames_in": 1200},
              {"stream": "b", "state": "failed", "frames_in": 3}], final=False)
    progress.close()
    assert "1203 frames" in out.getvalue() and "a 1,200, b failed" in out.getvalue()
    assert not _StreamsProgress(quiet=True, terminal=True).bar.active
