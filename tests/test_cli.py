import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli import cli

from conftest import crashed_session, write_session


@pytest.fixture
def run(data):
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(cli, [str(a) for a in args], env={"WSREC_DATA": str(data),
                                                              **(env or {})})
    return invoke


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_every_command_has_help_with_an_example(run):
    for name, command in cli.commands.items():
        assert command.help and "Example:" in command.help, name
        assert run(name, "--help").exit_code == 0


def test_ls_table_and_json(run, data):
    a, _ = write_session(data, n=20, venue="alpaca")
    h, _ = write_session(data, n=10, venue="hyperliquid")
    result = run("ls")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VENUE", "SESSION", "START", "DURATION", "FRAMES", "SIZE",
                                "STATUS"]
    assert any(a.name in line and "complete" in line and " 22 " in line for line in lines)
    rows = json.loads(run("ls", "--json").stdout)
    assert {r["id"] for r in rows} == {a.name, h.name}
    for r in rows:
        assert {"venue", "id", "path", "start", "end", "frames", "bytes", "status"} <= set(r)
    [row] = json.loads(run("ls", "hyperliquid", "--json").stdout)
    assert row["frames"] == 12 and row["status"] == "complete" and row["bytes"] > 0


def test_ls_shows_live_and_crashed(run, data):
    crashed_session(data)
    w = wsrec.SessionWriter("livey", data=data)
    try:
        out = run("ls").stdout
        assert "crashed" in out and "live" in out
        rows = {r["venue"]: r for r in json.loads(run("ls", "--json").stdout)}
        assert rows["crashy"]["crashed"] and rows["crashy"]["frames"] == 51
        assert rows["livey"]["live"] and rows["livey"]["status"] == "recording"
    finally:
        w.close()


def test_ls_empty_and_unreadable(run, data):
    result = run("ls")
    assert result.exit_code == 0 and result.stdout == "" and "no sessions" in result.stderr
    folder, _ = write_session(data, n=5)
    (folder / "session.json").write_text("{oops")
    result = run("ls")
    assert result.exit_code == 0 and "unreadable" in result.stdout
    assert "not valid JSON" in result.stderr


def test_info(run, data):
    folder, written = write_session(data, n=300)
    result = run("info", "last")
    assert result.exit_code == 0
    out = result.stdout
    assert f"alpaca/{folder.name}" in out and "complete" in out
    d = json.loads(run("info", "alpaca", "--json").stdout)
    s = wsrec.open_session(folder)
    frames = list(s.frames())
    assert d["frames_in"] == sum(f.dir == "in" for f in frames)
    assert d["frames_out"] == sum(f.dir == "out" for f in frames)
    assert d["events"] == 2 and d["frames"] == len(frames)
    assert d["raw_bytes"] == sum(len(f.payload) for f in frames)
    assert d["symbols"]["AAPL"] == sum("AAPL" in f.symbols for f in frames)
    assert d["channels"]["trades"] == sum("trades" in f.channels for f in frames)
    assert len(d["connections"]) == 1 and d["gaps"] == []
    assert d["compression_ratio"] > 0


def test_info_crashed_and_repair_flag(run, data):
    folder = crashed_session(data)
    result = run("info", "crashy", "--json")
    d = json.loads(result.stdout)
    assert d["state"] == "crashed" and d["frames_in"] == 50
    assert "crashed while recording" in result.stderr
    assert len(d["connections"]) == 1 and d["connections"][0]["url"]  # from the event rows
    assert (folder / "session.json").read_text().count('"recording"') == 1  # read-only
    result = run("info", "crashy", "--repair")
    assert result.exit_code == 0 and "repair: rebuilt part-000000.parquet" in result.stderr
    assert "recovered" in result.stdout


def test_verify_and_repair_commands(run, data):
    crashed_session(data)
    result = run("verify", "crashy")
    assert result.exit_code == 1 and "crashed while recording" in result.stdout
    assert result.stderr.startswith("Error: crashy/")
    report = json.loads(run("verify", "crashy", "--json").stdout)
    assert report["ok"] is False and report["state"] == "crashed"
    result = run("repair", "crashy")
    assert result.exit_code == 0 and "marked the session recovered" in result.stdout
    result = run("verify", "crashy")
    assert result.exit_code == 0 and result.stdout.startswith("ok: crashy/")
    result = run("repair", "crashy")
    assert result.exit_code == 0 and "nothing to repair" in result.stderr


def test_repair_refuses_live(run, data):
    w = wsrec.SessionWriter("livey", data=data)
    try:
        _one_line_error(run("repair", "livey"), "being recorded")
    finally:
        w.close()


def test_errors_are_one_line(run, data, tmp_path):
    _one_line_error(run("info", "nope"), "no session matches 'nope'")
    _one_line_error(run("info", "last"), "no sessions under")
    write_session(data, n=5, venue="a", session_id="20260101T000000Z-aaaa")
    write_session(data, n=5, venue="b", session_id="20260101T000000Z-bbbb")
    _one_line_error(run("verify", "2026"), "matches 2 sessions")
    folder = data / "a" / "20260101T000000Z-aaaa"
    (folder / "session.json").write_text("not json")
    _one_line_error(run("info", str(folder)), "session.json", "not valid JSON")
    assert (folder / "session.json").read_text() == "not json"


def test_truncated_part_is_an_error_naming_the_file(run, data):
    folder, _ = write_session(data, n=50)
    part = folder / "part-000000.parquet"
    original = part.read_bytes()
    part.write_bytes(original[: len(original) // 2])
    _one_line_error(run("info", "last"), "part-000000.parquet", "cannot read part")
    result = run("verify", "last")
    assert result.exit_code == 1 and "part-000000.parquet" in result.stdout
    assert part.read_bytes() == original[: len(original) // 2]  # untouched


def test_data_option_beats_environment(run, data, tmp_path):
    other = tmp_path / "other"
    write_session(other, n=5, venue="elsewhere")
    rows = json.loads(run("ls", "--json", "--data", other).stdout)
    assert [r["venue"] for r in rows] == ["elsewhere"]


def test_usage_errors_exit_2(run):
    assert run("info").exit_code == 2
    assert run("frobnicate").exit_code == 2


def test_python_dash_m(data):
    out = subprocess.run([sys.executable, "-m", "wsrec", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and wsrec.__version__ in out.stdout
