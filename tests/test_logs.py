"""Log lines: text as before, JSON lines for log shippers, one write each, no secrets."""

import json
import os
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from wsrec import logs
from wsrec.cli.commands import cli
from wsrec.errors import UsageError
from wsrec.logs import format_line, log, set_format

T = 1_795_000_000_123_456_789


@pytest.fixture(autouse=True)
def text_after():
    yield
    set_format("text")


def test_text_lines_are_the_messages_as_before():
    assert format_line("listening on ws://127.0.0.1:1", fmt="text") == \
        "listening on ws://127.0.0.1:1"
    assert format_line("disk is slow", "warning", {"path": "/x"}, fmt="text") == \
        "warning: disk is slow"
    assert format_line("gave up", "error", fmt="text") == "error: gave up"


def test_json_lines_carry_time_level_message_and_fields():
    line = format_line("complete: 3 frames", "info", {"frames_in": 3, "session": "S1",
                                                     "path": "/d", "ts": "not mine"},
                       fmt="json", ts_ns=T)
    assert "\n" not in line
    assert json.loads(line) == {"ts": "2026-11-18T11:06:40.123456789Z", "level": "info",
                                "msg": "complete: 3 frames", "frames_in": 3,
                                "session": "S1", "path": "/d"}
    # the keys come in a fixed order, so the lines read well too
    assert line.startswith('{"ts":"2026-11-18T11:06:40.123456789Z","level":"info","msg":')
    multi = json.loads(format_line("one\ntwo", "warning", fmt="json", ts_ns=T))
    assert multi["msg"] == "one\ntwo" and multi["level"] == "warning"


def test_public_values_are_printed_real_secrets_masked(capsys):
    """The guard masks secret-looking parameters, but for the values the caller names
    public (the demo token of the URL a simulator announces)."""
    url = "ws://127.0.0.1:1/v1/stream?token=sim.jwt.token"
    assert format_line(f"listening on {url}", fmt="text") == \
        "listening on ws://127.0.0.1:1/v1/stream?token=***"
    assert format_line(f"listening on {url}", fmt="text", public=["sim.jwt.token"]) == \
        f"listening on {url}"
    line = json.loads(format_line(f"on {url}&api_key=k3y.real", "info", {"url": url},
                                  fmt="json", ts_ns=T, public=["sim.jwt.token"]))
    assert line["msg"] == f"on {url}&api_key=***" and line["url"] == url
    log(f"listening on {url}", public=["sim.jwt.token"])
    log("ws://h/?token=other.jwt.value", public=["sim.jwt.token"])
    assert capsys.readouterr().err == f"listening on {url}\nws://h/?token=***\n"


def test_set_format_and_the_clock(capsys):
    set_format("json", clock=lambda: T)
    assert logs.get_format() == "json"
    log("hello", "warning", n=1)
    assert json.loads(capsys.readouterr().err) == {
        "ts": "2026-11-18T11:06:40.123456789Z", "level": "warning", "msg": "hello", "n": 1}
    set_format("text")
    log("hello", "warning", n=1)
    assert capsys.readouterr().err == "warning: hello\n"


def test_bad_format_or_level_is_a_usage_error():
    with pytest.raises(UsageError, match="log format must be one of text, json"):
        set_format("xml")
    with pytest.raises(UsageError, match="log level must be one of"):
        format_line("x", "loud")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_in_urls_never_reach_a_line(fmt):
    message = ("cannot connect to wss://user:hunter22@example.test/ws?apiKey=SEKRET123&x=1 "
               "(token=SEKRET123)")
    line = format_line(message, "warning", {"url": "wss://h/?access_token=SEKRET123",
                                            "attempt": 2}, fmt=fmt, ts_ns=T)
    assert "SEKRET123" not in line and "hunter22" not in line
    assert "***" in line and "x=1" in line
    if fmt == "json":
        record = json.loads(line)
        assert record["url"] == "wss://h/?access_token=***" and record["attempt"] == 2


def test_concurrent_lines_never_run_together(tmp_path, monkeypatch):
    path = tmp_path / "err"
    with open(path, "w") as err:
        monkeypatch.setattr(sys, "stderr", err)
        set_format("json")

        def worker(i):
            for j in range(200):
                log("x" * 3000, client=i, n=j)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    lines = path.read_text().splitlines()
    assert len(lines) == 1600
    assert sorted((r["client"], r["n"]) for r in map(json.loads, lines)) == \
        [(i, j) for i in range(8) for j in range(200)]


def test_cli_errors_and_warnings_as_json_lines(tmp_path):
    runner = CliRunner()
    env = {"WSREC_DATA": str(tmp_path / "none")}
    result = runner.invoke(cli, ["--log-format", "json", "info", "nosuch"], env=env)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "nosuch" in record["msg"]
    # the same failure as text: click's one line, as always
    result = runner.invoke(cli, ["info", "nosuch"], env=env)
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")
    # the environment variable chooses it too
    result = runner.invoke(cli, ["info", "nosuch"], env={**env, "WSREC_LOG_FORMAT": "json"})
    assert json.loads(result.stderr)["level"] == "error"
    result = runner.invoke(cli, ["--log-format", "yaml", "ls"], env=env)
    assert result.exit_code == 2


def test_a_json_recording_writes_only_json_lines(tmp_path):
    env = {**os.environ, "WSREC_DATA": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "wsrec", "--log-format", "json", "record",
                          "hyperliquid", "-s", "BTC", "-c", "trades", "--sim", "--max-frames",
                          "20", "--sim-rate", "200"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stderr.splitlines()]   # no progress bar
    [summary] = records
    assert summary["msg"].startswith("complete: 20 frames in")
    assert summary["frames_in"] == 20 and summary["venue"] == "hyperliquid"
    assert summary["stopped_by"] == "max-frames" and summary["session"] in summary["path"]


def test_command_warnings_as_json_lines(tmp_path):
    folder = tmp_path / "venue=bad" / "date=2026-11-20" / "20261120T000000Z-aaaa"
    folder.mkdir(parents=True)
    (folder / "session.json").write_text("{nope")
    runner = CliRunner()
    for fmt in ("text", "json"):
        result = runner.invoke(cli, ["--log-format", fmt, "ls", "--data", str(tmp_path)])
        assert result.exit_code == 0 and "unreadable" in result.stdout   # data: unchanged
        [line] = result.stderr.splitlines()
        if fmt == "text":
            assert line.startswith("warning: ") and "not valid JSON" in line
        else:
            record = json.loads(line)
            assert record["level"] == "warning" and "not valid JSON" in record["msg"]
