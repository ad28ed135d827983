import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.store.layout import session_rel
from wsrec.store.roots import session_folders

from conftest import crashed_session, write_session


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
    assert any(a.name in line and "complete" in line and " 20 " in line for line in lines)
    rows = json.loads(run("ls", "--json").stdout)
    assert {r["id"] for r in rows} == {a.name, h.name}
    for r in rows:
        assert {"venue", "id", "path", "start", "end", "frames", "frames_in", "frames_out",
                "events", "rows", "bytes", "status"} <= set(r)
    [row] = json.loads(run("ls", "hyperliquid", "--json").stdout)
    assert row["frames"] == row["frames_in"] == 10 and row["events"] == 2
    assert row["rows"] == 12 and row["status"] == "complete" and row["bytes"] > 0


def test_ls_frames_are_the_inbound_frames_info_counts(run, data):
    """ls FRAMES and info's "frames" line are the same number: the inbound frames."""
    folder, written = write_session(data, n=300)
    inbound = sum(kw["dir"] == "in" for _, kw in written)
    out = sum(kw["dir"] == "out" for _, kw in written)
    assert out and inbound < len(written)   # outbound frames and events as well
    [line] = run("ls").stdout.splitlines()[1:]
    assert line.split()[5] == str(inbound)
    assert f"frames       {inbound:,} in, {out:,} out, 2 events" in run("info", "last").stdout
    [row] = json.loads(run("ls", "--json").stdout)
    d = json.loads(run("info", "last", "--json").stdout)
    for key in ("frames", "frames_in", "frames_out", "events", "rows"):
        assert row[key] == d[key], key
    assert (row["frames_in"], row["frames_out"], row["events"], row["rows"]) == \
        (inbound, out, 2, len(written))


def test_ls_counts_a_finished_session_from_its_manifest(run, data, monkeypatch):
    """Each part's manifest entry has its rows by direction, so ls reads no part (a
    bucket's ls stays one manifest a session); a manifest without them is counted from
    the dir column."""
    from wsrec.store.session import Session
    folder, written = write_session(data, n=300)
    inbound = sum(kw["dir"] == "in" for _, kw in written)
    manifest = json.loads((folder / "session.json").read_text())
    [part] = manifest["parts"]
    assert (part["frames_in"], part["frames_out"], part["events"]) == \
        (inbound, len(written) - inbound - 2, 2)
    with monkeypatch.context() as m:
        m.setattr(Session, "batches", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
        [row] = json.loads(run("ls", "--json").stdout)
    assert row["frames"] == inbound
    part["frames_in"] += 1   # counts that don't add up to the rows: the dir column's
    (folder / "session.json").write_text(json.dumps(manifest))
    [row] = json.loads(run("ls", "--json").stdout)
    assert row["frames"] == inbound
    for key in ("frames_in", "frames_out", "events"):
        del part[key]
    (folder / "session.json").write_text(json.dumps(manifest))
    [row] = json.loads(run("ls", "--json").stdout)
    assert row["frames"] == inbound


def _failed_to_connect(data) -> str:
    """What a recorder that never connected leaves: a failed session with one event."""
    runner = CliRunner()
    result = runner.invoke(cli, ["record", "url", "ws://127.0.0.1:1", "--duration", "5s",
                                 "--max-retries", "0", "--data", str(data)])
    assert result.exit_code == 1 and "cannot connect" in result.stderr, result.output
    [session] = session_folders(data, "127.0.0.1")
    return session.name


@pytest.mark.timeout(60)
def test_ls_hides_sessions_without_an_inbound_frame(run, data):
    kept, _ = write_session(data, n=5)
    empty = _failed_to_connect(data)
    with wsrec.SessionWriter("alpaca", data=data) as w:   # it sent, nothing came back
        w.event("open", url="wss://example.test/ws")
        w.append(b'{"action":"subscribe"}', dir="out", kind="text")
    result = run("ls")
    assert result.exit_code == 0
    assert kept.name in result.stdout and empty not in result.stdout
    assert w.folder.name not in result.stdout
    assert result.stderr == "2 empty sessions hidden, 1 of them failed (--all shows them)\n"
    assert [r["id"] for r in json.loads(run("ls", "--json").stdout)] == [kept.name]
    shown = run("ls", "--all")
    assert shown.stderr == "" and empty in shown.stdout and w.folder.name in shown.stdout
    rows = {r["id"]: r for r in json.loads(run("ls", "--all", "--json").stdout)}
    assert rows[empty]["status"] == "failed" and rows[empty]["events"] == 1
    assert rows[w.folder.name]["frames_out"] == 1 and rows[w.folder.name]["frames"] == 0
    assert (w.folder / "session.json").exists()   # evidence kept on disk
    # nothing else to list: the hint alone, not "no sessions"
    result = run("ls", "127.0.0.1")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "1 empty session hidden, 1 of them failed (--all shows them)\n"


def test_ls_lists_a_live_session_before_its_first_frame(run, data):
    with wsrec.SessionWriter("livey", data=data) as w:
        rows = json.loads(run("ls", "--json").stdout)
        assert [(r["id"], r["state"], r["frames"]) for r in rows] == [(w.id, "live", 0)]


def test_ls_shows_live_and_crashed(run, data):
    crashed_session(data)
    w = wsrec.SessionWriter("livey", data=data)
    try:
        out = run("ls").stdout
        assert "crashed" in out and "live" in out
        rows = {r["venue"]: r for r in json.loads(run("ls", "--json").stdout)}
        assert rows["crashy"]["crashed"] and rows["crashy"]["frames"] == 50
        assert rows["crashy"]["rows"] == 51
        assert rows["livey"]["live"] and rows["livey"]["status"] == "recording"
    finally:
        w.close()


def test_ls_empty_and_unreadable(run, data):
    data.mkdir(parents=True, exist_ok=True)
    result = run("ls")
    assert result.exit_code == 0 and result.stdout == "" and "no sessions" in result.stderr
    folder, _ = write_session(data, n=5)
    (folder / "session.json").write_text("{oops")
    result = run("ls")
    assert result.exit_code == 0 and "unreadable" in result.stdout
    assert "not valid JSON" in result.stderr


def test_ls_of_a_data_root_that_does_not_exist_is_an_error(run, tmp_path):
    """A root given with --data (or $WSREC_DATA) that isn't there is a mistake, not an
    empty list; the default root not there yet is just empty."""
    missing = tmp_path / "nowhere"
    for json_flag in ((), ("--json",)):
        result = run("ls", "--data", str(missing), *json_flag)
        _one_line_error(result, f"data root {missing} does not exist")
        assert result.stdout == "" and not missing.exists()
    result = run("ls", env={"WSREC_DATA": str(missing)})
    _one_line_error(result, f"data root {missing} does not exist", "$WSREC_DATA")


@pytest.mark.parametrize("args,option", [
    (("replay", "alpaca", "--start", "yesterday"), "--start"),
    (("convert", "alpaca", "--format", "jsonl", "--end", "yesterday"), "--end"),
    (("ls", "--since", "yesterday"), "--since"),
])
def test_a_time_that_is_not_one_names_its_option(run, data, args, option):
    write_session(data, n=5)
    result = run(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: Invalid value for {option}: not an ISO 8601 time: 'yesterday' (expected e.g.")


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
    assert d["events"] == 2 and d["rows"] == len(frames) and d["frames"] == d["frames_in"]
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
    folder = data / session_rel("a", "20260101T000000Z-aaaa")
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


# s3:// and gs:// roots are read (tests/store/test_remote.py); writing to them is refused
@pytest.mark.parametrize("root", ["HTTP://h/p", "ftp://h/x"])
@pytest.mark.parametrize("command", [["ls"], ["info", "last"], ["replay", "last"],
                                     ["record", "alpaca", "-s", "FAKEPACA", "--sim"],
                                     ["import", "x.jsonl", "--venue", "v"]])
def test_a_url_data_root_is_a_usage_error(run, tmp_path, monkeypatch, root, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text("{}\n")
    for result in (run(*command, "--data", root), run(*command, env={"WSREC_DATA": root})):
        assert result.exit_code == 2, result.output
        assert "is a URL wsrec can't use; give a local folder, s3://bucket/prefix" \
            in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "x.jsonl"]  # nothing created


def test_a_local_root_with_a_colon_works(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("record", "alpaca", "-s", "FAKEPACA", "--sim", "--max-frames", "20",
                 "--sim-rate", "200", "--data", "run:1", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run:1" / "venue=alpaca").is_dir()
    assert run("verify", "--data", "run:1", "last").exit_code == 0
    out = run("convert", "--data", "run:1", "last", "--format", "parquet", "-o", "a:b.parquet")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "a:b.parquet").stat().st_size > 0
    assert wsrec.open_session("last", data="run:1").rows() > 20


def test_filters_matching_nothing_name_what_is_there(run, data):
    write_session(data, n=200, venue="alpaca")
    result = run("replay", "alpaca", "--speed", "max", "--channel", "quote")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "warning: nothing replayed: no frame has channel 'quote'; channels here: "
        + result.stderr.split("channels here: ")[1].strip()]
    assert "quotes" in result.stderr.split("channels here: ")[1]
    result = run("convert", "alpaca", "--format", "jsonl", "-s", "NOPE,ZZZ", "-q")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no frame has symbol 'NOPE' or 'ZZZ'; symbols here: " in result.stderr
    assert "AAPL" in result.stderr
    result = run("replay", "alpaca", "--speed", "max", "--end", "2000-01-01")
    assert result.exit_code == 0
    assert "no frame between the start and 2000-01-01T00:00:00.000000000Z; the sessions " \
           "span 2026-" in result.stderr


def test_usage_errors_exit_2(run):
    assert run("info").exit_code == 2
    assert run("frobnicate").exit_code == 2


def test_library_usage_errors_exit_2_naming_the_option(run, data):
    write_session(data, n=20, venue="alpaca")
    result = run("replay", "alpaca", "--to", "ftp://x")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Usage: cli replay [OPTIONS] SESSION...")  # click's form
    assert "Error: Invalid value for --to: unknown target 'ftp://x'" in result.stderr
    result = run("replay", "alpaca", "--start", "+2s", "--end", "+1s")
    assert result.exit_code == 2 and "Error: --start is after --end" in result.stderr
    result = run("convert", "alpaca", "--format", "parquet", "-o", "")
    assert result.exit_code == 2 and "the output path is empty" in result.stderr


def test_other_errors_are_not_usage_errors(run, data, monkeypatch):
    """A library's ValueError in the middle of an operation is a bug (traceback), never
    a usage error; wsrec's own errors exit 1."""
    import pyarrow as pa

    import wsrec.replay.convert as convert_module   # the command imports it when it runs
    write_session(data, n=20, venue="alpaca")

    def broken(*args, **kwargs):
        raise pa.ArrowInvalid("boom")
    monkeypatch.setattr(convert_module, "convert", broken)
    result = run("convert", "alpaca", "--format", "csv", "-q")
    assert result.exit_code == 1 and isinstance(result.exception, pa.ArrowInvalid)

    def refused(*args, **kwargs):
        raise wsrec.errors.CorruptData("part-000000.parquet: cannot read part")
    monkeypatch.setattr(convert_module, "convert", refused)
    _one_line_error(run("convert", "alpaca", "--format", "csv", "-q"), "cannot read part")


def test_python_dash_m(data):
    out = subprocess.run([sys.executable, "-m", "wsrec", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and wsrec.__version__ in out.stdout


# -- record, sim, venues ------------------------------------------------------------------

def test_record_from_the_simulator(run, data):
    result = run("record", "alpaca", "--symbols", "FAKEPACA", "--sim", "--duration", "1s",
                 "--sim-rate", "100", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "complete" and summary["frames_in"] > 20
    assert "complete:" in result.stderr and "alpaca/" in result.stderr
    s = wsrec.open_session("alpaca", data=data)
    assert s.status == "complete" and s.rows() == summary["frames_in"] + summary[
        "frames_out"] + summary["events"]
    assert s.manifest["args"]["symbols"] == ["FAKEPACA"]


def test_record_max_frames_and_quiet(run, data):
    result = run("record", "hyperliquid", "-s", "BTC", "-c", "trades", "--sim",
                 "--max-frames", "25", "--sim-rate", "200", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(run("info", "hyperliquid", "--json").stdout)["frames_in"] == 25


@pytest.mark.parametrize("args,message", [
    (["record", "alpaca", "--symbols", "AAPL"], "APCA_API_KEY_ID"),
    (["record", "dfuse", "--symbols", "eosio"], "DFUSE_API_TOKEN"),
    (["record", "hyperliquid", "-c", "nope", "-s", "BTC", "--sim"], "unknown channel"),
    (["record", "alpaca", "--duration", "soon", "--sim", "-s", "X"], "not a duration"),
    (["record", "alpaca", "--max-frames", "0", "--sim", "-s", "X"], "must be positive"),
    (["record", "alpaca", "-p", "novalue", "--sim", "-s", "X"], "is not KEY=VALUE"),
    (["record", "nowhere"], "VENUE"),
    (["record", "url"], "give the endpoint"),
    (["record", "url", "ws://127.0.0.1:9/", "--name", "a/b"],
     "Invalid value for --name: invalid name 'a/b'"),
    (["import", "nofile", "--venue", "last"], "invalid venue"),
])
def test_record_usage_errors_exit_2(run, data, args, message):
    result = run(*args, env={"APCA_API_KEY_ID": None, "APCA_API_SECRET_KEY": None,
                             "DFUSE_API_TOKEN": None})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not data.exists() or not list(data.rglob("session.json"))  # nothing recorded


def test_record_fatal_error_exits_1(run, data):
    from conftest import record_from_sim  # noqa: F401 - the CLI can't inject faults
    result = run("record", "url", "ws://127.0.0.1:9/nothing-listens", "--max-retries", "0",
                 "--name", "dead")
    _one_line_error(result, "gave up after 0 retries", "cannot connect")
    s = wsrec.open_session("dead", data=data)
    assert s.status == "failed" and "cannot connect" in s.manifest["error"]


def test_sigterm_ends_a_recording_cleanly(data):
    import os
    import signal
    import time
    env = {**os.environ, "WSREC_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "record", "flow", "--sim",
                             "--sim-rate", "50", "--quiet"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until frames are being recorded
            sessions = list(data.glob("flow/*/part-*.journal"))
            if sessions and sessions[0].stat().st_size > 2000:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    s = wsrec.open_session("flow", data=data)
    assert s.status == "complete" and s.rows() > 5 and not s.journals
    assert [f.kind for f in s.frames(direction="event")][-1] == "close"


def test_sim_prints_listening_first(data):
    import asyncio
    import os
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "sim", "hyperliquid", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("listening on ws://127.0.0.1:")
        url = line.split()[-1]

        async def client():
            from websockets.asyncio.client import connect
            async with connect(url) as ws:   # the announced URL has the path
                await ws.send('{"method":"ping"}')
                return await asyncio.wait_for(ws.recv(), 10)
        assert asyncio.run(client()) == '{"channel":"pong"}'
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_sim_port_in_use(run):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run("sim", "flow", "--port", port)
    _one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_venues(run):
    result = run("venues")
    assert result.exit_code == 0
    for name in ("alpaca", "hyperliquid", "vega", "flow", "dfuse", "url"):
        assert name in result.stdout
    out = run("venues", "alpaca").stdout
    assert "APCA_API_KEY_ID" in out and "wss://stream.data.alpaca.markets/v2/test" in out
    info = json.loads(run("venues", "flow", "--json").stdout)
    assert info["default_channels"] == ["block_digests"] and info["watchdog_s"] == 60
    assert "watchdog: off" in run("venues", "vega").stdout


def test_secrets_absent_from_output_and_files(run, data):
    import os
    import signal
    from conftest import all_bytes_under
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "sim", "alpaca", "--rate", "100"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stderr.readline().split()[-1]
        env = {"APCA_API_KEY_ID": "AKIDNOTFORDISK", "APCA_API_SECRET_KEY": "SHHHHHHHHHH"}
        result = run("record", "alpaca", "-s", "FAKEPACA", "--url", url, "--max-frames", "30",
                     "--json", env=env)
        assert result.exit_code == 0, result.output
        for secret in env.values():
            assert secret not in result.stdout and secret not in result.stderr
            assert secret.encode() not in all_bytes_under(data)
        s = wsrec.open_session("alpaca", data=data)
        out = [f.payload for f in s.frames(direction="out")]
        assert out[0] == b'{"action":"auth","key":"***","secret":"***"}'
        info = run("info", "alpaca", "--json").stdout
        assert "AKIDNOTFORDISK" not in info
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


# -- unreadable sessions and damaged parts ---------------------------------------------------

def test_ls_shows_every_unreadable_session_once_and_the_rest(run, data):
    good, _ = write_session(data, n=5, venue="alpaca", session_id="20260101T000000Z-good")
    bad, _ = write_session(data, n=5, venue="alpaca", session_id="20260102T000000Z-badd")
    gone, _ = write_session(data, n=5, venue="flow", session_id="20260103T000000Z-gone")
    text = (bad / "session.json").read_text()
    (bad / "session.json").write_text(text.replace('"rows": 7', '"rows": "many"'))
    (gone / "session.json").unlink()
    result = run("ls")
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2
    assert "parts[0].rows" in warnings[0] and "run 'wsrec repair'" in warnings[0]
    assert "missing manifest, but the folder holds 1 part" in warnings[1]
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[1:]] == [good.name, bad.name, gone.name]
    assert lines[1].endswith("complete") and lines[2].endswith("unreadable")
    assert lines[3].endswith("no manifest")
    rows = json.loads(run("ls", "--json").stdout)
    assert [r["state"] for r in rows] == ["complete", "unreadable", "no manifest"]
    assert "parts[0].rows" in rows[1]["problem"] and "problem" not in rows[0]


def test_last_steps_over_an_unreadable_newest_session(run, data):
    older, _ = write_session(data, n=5, venue="alpaca", session_id="20260101T000000Z-aaaa")
    newest, _ = write_session(data, n=5, venue="alpaca", session_id="20260102T000000Z-bbbb")
    (newest / "session.json").write_text('{"format_version": 2, "started": "garbage"}')
    result = run("info", "last", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["id"] == older.name
    assert result.stderr.startswith("warning: skipped alpaca/20260102T000000Z-bbbb: ")
    _one_line_error(run("info", newest.name), "session.json", "field venue")


def _damaged_row_group(folder):
    """Flip a byte in the middle of the second row group's payload pages."""
    import pyarrow.parquet as pq
    part = folder / "part-000000.parquet"
    meta = pq.ParquetFile(part).metadata
    column = [c for c in (meta.row_group(1).column(i) for i in range(meta.num_columns))
              if c.path_in_schema == "payload"][0]
    data = bytearray(part.read_bytes())
    data[column.data_page_offset + column.total_compressed_size // 2] ^= 0x10
    part.write_bytes(bytes(data))
    return part


@pytest.mark.parametrize("command", [["replay", "--speed", "max", "--format", "envelope"],
                                     ["convert", "--format", "jsonl"]])
def test_read_damaged_skips_the_damaged_row_groups(run, data, command):
    folder, _ = write_session(data, n=298, row_group_rows=100)
    args = [command[0], "last", *command[1:], "--direction", "all"]
    pristine = run(*args).stdout.splitlines()
    assert len(pristine) == 300
    part = _damaged_row_group(folder)
    refused = run(*args)
    _one_line_error(refused, str(part), "row group 1", "--read-damaged")
    assert refused.stdout.splitlines() == pristine[:len(refused.stdout.splitlines())]
    result = run(*args, "--read-damaged")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == pristine[:100] + pristine[200:]
    assert result.stderr.strip().splitlines() == [
        f"warning: {part}: skipped row group 1 (100 rows, seq 100..199): "
        + result.stderr.split("seq 100..199): ")[1].strip()]


def test_prune_summary_and_warnings_go_through_the_log(run, data):
    """``--log-format json``: prune's summary on stderr is a JSON line too."""
    from wsrec.logs import set_format

    try:
        result = run("--log-format", "json", "prune", "--older-than", "30d")
    finally:
        set_format("text")   # the command set it process-wide
    assert result.exit_code == 0, result.output
    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert line["level"] == "info" and line["msg"].startswith("removed 0 session(s)")


@pytest.mark.parametrize("venue", ["alpaca", "hyperliquid", "vega", "flow", "dfuse"])
def test_venues_lists_line_up_however_long_a_name(run, venue):
    """Each list of `wsrec venues VENUE` (channels, parameters, credentials) has its
    descriptions in one column, even past a long name (vega's includeDerivedParties)."""
    result = run("venues", venue)
    assert result.exit_code == 0
    sections, current = [], None
    for line in result.stdout.splitlines():
        if line.startswith("  ") and current is not None:
            current.append(line)
        else:
            current = []
            sections.append(current)
    for rows in (s for s in sections if len(s) > 1):
        starts = {len(r) - len(r[2:].split("  ", 1)[1].lstrip()) for r in rows if "  " in r[2:]}
        assert len(starts) == 1, rows


def test_a_mistyped_venue_gets_a_did_you_mean(run, data):
    write_session(data, n=5)
    result = run("info", "alpacaa")
    _one_line_error(result, "no session matches 'alpacaa'", "did you mean 'alpaca'?")
    result = run("info", "zzz")
    _one_line_error(result, "no session matches 'zzz'")
    assert "did you mean" not in result.stderr
    # a venue wsrec knows, without a session under this root
    _one_line_error(run("replay", "hyperliqiud"), "no session matches 'hyperliqiud'",
                    "did you mean 'hyperliquid'? it has no sessions there either")
    write_session(data, n=5, venue="hyperliquid")
    _one_line_error(run("replay", "hyperliqiud"), "did you mean 'hyperliquid'? try")
