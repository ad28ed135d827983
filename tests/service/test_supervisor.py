"""Many streams in one process, from the built-in simulators on 127.0.0.1: each into its
own session, failing alone, reloaded from the file (unchanged ones untouched), stopped
cleanly; and the real signals, in a subprocess."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import wsrec
from wsrec.service.config import load_config
from wsrec.service.supervisor import Supervisor, run_config

pytestmark = pytest.mark.timeout(120)

FLOW = """
[[stream]]
name = "{name}"
venue = "flow"
sim = {{ rate = {rate} }}
"""
HL = """
[[stream]]
name = "{name}"
venue = "hyperliquid"
symbols = ["BTC"]
sim = {{ rate = {rate} }}
"""
BAD = """
[[stream]]
name = "bad"
venue = "alpaca"
symbols = "FAKEPACA"
sim = { error = "402" }
"""


def write(path, *streams, top="backoff = 0.05\n"):
    path.write_text(top + "".join(streams))
    return path


async def until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def frames(sup, name):
    run = sup.running.get(name)
    return run.recorder.frames_in if run is not None and run.recorder is not None else 0


def assert_complete(result, stopped_by):
    assert result.status == "complete" and result.error is None, result
    s = wsrec.open_session(result.result.path)
    assert s.status == "complete" and not s.crashed and not s.journals
    assert [f.kind for f in s.frames(direction="event")][-1] == "close"
    assert result.result.stopped_by == stopped_by
    return s


@pytest.fixture
def cfg(tmp_path):
    return tmp_path / "wsrec.toml"


def test_streams_record_side_by_side_and_a_failing_one_ends_alone(cfg, tmp_path):
    write(cfg, FLOW.format(name="fl", rate=100), HL.format(name="hl", rate=100), BAD,
          top=f"data = '{tmp_path / 'data'}'\n")
    lines = []

    async def main():
        sup = Supervisor(load_config(cfg), log=lines.append)
        task = asyncio.create_task(sup.run())
        await until(lambda: sup.ready is not None and sup.ready.is_set())
        await until(lambda: frames(sup, "fl") > 5 and frames(sup, "hl") > 5, what="frames")
        await until(lambda: any(r.stream == "bad" for r in sup.results), what="bad ends")
        status = {s["stream"]: s for s in sup.status()}
        assert status["fl"]["state"] == "running" and status["hl"]["state"] == "running"
        assert status["bad"]["state"] == "failed" and "402" in status["bad"]["error"]
        assert status["fl"]["session"].startswith("fl/")
        await asyncio.sleep(0.3)
        assert set(sup.running) == {"fl", "hl"}   # the others went on
        sup.stop()
        return await asyncio.wait_for(task, 30)

    results = {r.stream: r for r in asyncio.run(main())}
    assert results["bad"].status == "failed" and "alpaca error 402" in results["bad"].error
    assert wsrec.open_session(results["bad"].result.path).status == "failed"
    fl, hl = assert_complete(results["fl"], "signal"), assert_complete(results["hl"], "signal")
    assert fl.venue == "fl" and hl.venue == "hl"   # each stream its own folder
    assert fl.manifest["args"]["venue"] == "flow" and fl.manifest["args"]["sim"] is True
    assert fl.path.parent.parent.parent == tmp_path / "data"
    assert any(line.startswith("bad: failed: alpaca error 402") for line in lines)
    assert any(line.startswith("stop: stopping 2 stream(s)") for line in lines)


def test_reload_touches_only_what_changed(cfg, tmp_path):
    write(cfg, FLOW.format(name="a", rate=50), HL.format(name="b", rate=50),
          FLOW.format(name="c", rate=50))
    lines = []

    async def main():
        sup = Supervisor(load_config(cfg, data=tmp_path / "data"), data=tmp_path / "data",
                         log=lines.append)
        task = asyncio.create_task(sup.run())
        await until(lambda: all(frames(sup, n) > 3 for n in "abc"), what="frames")
        a, c = sup.running["a"].recorder, sup.running["c"].recorder
        a_session, a_conns = a.writer.id, a.next_conn
        # a unchanged, b removed, c changed, d added
        write(cfg, FLOW.format(name="a", rate=50), FLOW.format(name="c", rate=80),
              HL.format(name="d", rate=50))
        changes = await asyncio.wait_for(sup.reload_file(), 30)
        assert changes == ["reload: b: removed; stopping it",
                           "reload: c: changed (sim); restarting it",
                           "reload: d: added; starting it"]
        assert sup.running["a"].recorder is a and a.writer.id == a_session
        assert a.next_conn == a_conns and not a.done   # the same connection
        assert sup.running["c"].recorder is not c and c.done
        await until(lambda: frames(sup, "d") > 3 and frames(sup, "c") > 3, what="new frames")
        assert set(sup.running) == {"a", "c", "d"}
        # nothing changed: nothing happens
        assert await sup.reload_file() == ["reload: no stream changed"]
        assert sup.running["a"].recorder is a
        sup.stop()
        return await asyncio.wait_for(task, 30), a_session

    results, a_session = asyncio.run(main())
    by = {}
    for r in results:
        by.setdefault(r.stream, []).append(r)
    assert [len(by[n]) for n in "abcd"] == [1, 1, 2, 1]
    assert assert_complete(by["a"][0], "signal").id == a_session
    assert_complete(by["b"][0], "reload")
    old_c, new_c = assert_complete(by["c"][0], "reload"), assert_complete(by["c"][1], "signal")
    assert old_c.id != new_c.id   # a new session for the new entry
    assert_complete(by["d"][0], "signal")
    assert "stop: stopping 3 stream(s)" in lines


def test_an_invalid_file_or_a_new_data_root_leaves_the_streams_alone(cfg, tmp_path):
    write(cfg, FLOW.format(name="a", rate=50), top=f"data = '{tmp_path / 'data'}'\n")

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None)
        task = asyncio.create_task(sup.run())
        await until(lambda: frames(sup, "a") > 3, what="frames")
        a = sup.running["a"].recorder
        cfg.write_text(cfg.read_text() + "watchdog = -1\n")
        [line] = await sup.reload_file()
        assert line.startswith(f"reload: {cfg}:7: [[stream]] \"a\": watchdog: -1 is out of "
                               f"range") and line.endswith("; the streams go on as they were")
        cfg.write_text("this is not toml")
        [line] = await sup.reload_file()
        assert line.startswith(f"reload: {cfg}:1:")
        write(cfg, FLOW.format(name="a", rate=50), top=f"data = '{tmp_path / 'other'}'\n")
        assert await sup.reload_file() == [
            "reload: data changed; restart wsrec to apply it (the streams keep the old one)",
            "reload: no stream changed"]
        write(cfg, FLOW.format(name="a", rate=50), FLOW.format(name="n", rate=50),
              top=f"data = '{tmp_path / 'other'}'\n")
        assert (await sup.reload_file())[-1] == "reload: n: added; starting it"
        await until(lambda: frames(sup, "n") > 0, what="n's frames")
        assert sup.running["a"].recorder is a and not a.done
        sup.stop()
        return await asyncio.wait_for(task, 30)

    results = asyncio.run(main())
    assert sorted(r.stream for r in results) == ["a", "n"]
    for r in results:
        s = assert_complete(r, "signal")
        assert s.path.is_relative_to(tmp_path / "data")   # the data root it started with
    assert not (tmp_path / "other").exists()


def test_a_stream_ends_by_itself_and_the_run_returns_when_all_have(cfg, tmp_path):
    write(cfg, FLOW.format(name="short", rate=200) + "max_frames = 5\n",
          HL.format(name="timed", rate=50) + "duration = '0.5s'\n")
    results = run_config(cfg, data=tmp_path / "data", log=lambda line: None)
    by = {r.stream: r for r in results}
    assert by["short"].result.frames_in == 5
    assert_complete(by["short"], "max-frames")
    assert_complete(by["timed"], "duration")


def test_a_stream_that_cannot_start_fails_alone(cfg, tmp_path):
    (tmp_path / "data").write_text("a file, not a folder")
    write(cfg, FLOW.format(name="a", rate=50), top=f"data = '{tmp_path / 'data'}'\n")
    lines = []
    [result] = run_config(cfg, log=lines.append)
    assert result.status == "failed" and result.result is None and result.error
    assert lines == [f"a: failed to start: {result.error}"]


def test_a_bug_in_one_stream_still_closes_the_others_and_is_raised(cfg, tmp_path,
                                                                   monkeypatch):
    from wsrec.record.recorder import Recorder
    real_run = Recorder.run

    async def run(self):
        if self.writer.venue == "boom":
            await asyncio.sleep(0.3)
            raise RuntimeError("a bug")
        return await real_run(self)

    monkeypatch.setattr(Recorder, "run", run)
    write(cfg, FLOW.format(name="ok", rate=50), FLOW.format(name="boom", rate=50),
          top=f"data = '{tmp_path / 'data'}'\n")
    sup = Supervisor(load_config(cfg), log=lambda line: None)
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(sup.run())
    [ok] = sup.results
    assert_complete(ok, "signal")


def test_stop_and_reload_are_safe_from_another_thread(cfg, tmp_path):
    write(cfg, FLOW.format(name="a", rate=50), top=f"data = '{tmp_path / 'data'}'\n")
    sup = Supervisor(load_config(cfg), log=lambda line: None)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", asyncio.run(sup.run())))
    thread.start()
    deadline = time.monotonic() + 30
    while frames(sup, "a") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    write(cfg, FLOW.format(name="a", rate=50), FLOW.format(name="b", rate=50),
          top=f"data = '{tmp_path / 'data'}'\n")
    sup.reload()
    while frames(sup, "b") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sup.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert sorted(r.stream for r in out["r"]) == ["a", "b"]
    assert all(r.status == "complete" for r in out["r"])


def test_real_signals_reload_and_stop_a_running_config(tmp_path):
    """SIGHUP applies the edited file, SIGTERM stops every stream cleanly (exit 0)."""
    data = tmp_path / "data"
    cfg = write(tmp_path / "wsrec.toml", FLOW.format(name="a", rate=50),
                top=f"data = '{data}'\n")
    proc = subprocess.Popen([sys.executable, "-m", "wsrec", "record", "--config", str(cfg),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                sys.path)})

    def wait_for(pattern, what):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            journals = list(data.glob(pattern))
            if journals and journals[0].stat().st_size > 1000:
                return
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        wait_for("venue=a/*/*/part-*.journal", "a's frames")
        write(cfg, FLOW.format(name="a", rate=50), HL.format(name="b", rate=50),
              top=f"data = '{data}'\n")
        proc.send_signal(signal.SIGHUP)
        wait_for("venue=b/*/*/part-*.journal", "b's frames after SIGHUP")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 0, err
    assert "reload: b: added; starting it" in err and "SIGTERM: stopping 2 stream(s)" in err
    import json
    results = json.loads(out)
    assert sorted(r["stream"] for r in results) == ["a", "b"]
    for r in results:
        assert r["status"] == "complete" and r["stopped_by"] == "signal"
        s = wsrec.open_session(r["path"])
        assert s.status == "complete" and not s.crashed and s.rows() > 3
    assert len(list(data.glob("venue=a/*/*"))) == 1   # a kept its one session


def test_min_free_stops_only_the_stream_whose_floor_is_crossed(cfg, tmp_path):
    """``min_free`` per stream: the stream with the higher floor stops failed, its session
    sealed; the other goes on."""
    import types

    def disk(path):   # 5 GB free: above one stream's floor, below the other's
        return types.SimpleNamespace(free=5_000_000_000, total=100 << 30, used=0)

    write(cfg, FLOW.format(name="low", rate=50) + 'min_free = "1GB"\n',
          FLOW.format(name="high", rate=50) + 'min_free = "6GB"\n',
          top=f"backoff = 0.05\ndata = '{tmp_path / 'data'}'\n")

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None,
                         recorder=dict(disk_usage=disk))
        task = asyncio.create_task(sup.run())
        await until(lambda: any(r.stream == "high" for r in sup.results), what="high ends")
        await until(lambda: frames(sup, "low") > 3, what="frames")
        sup.stop()
        return await asyncio.wait_for(task, 30)

    results = {r.stream: r for r in asyncio.run(main())}
    assert results["high"].status == "failed" and "below --min-free" in results["high"].error
    assert results["high"].result is None   # below at the start: no session at all
    assert_complete(results["low"], "signal")


def test_metrics_report_every_running_stream_and_stop_with_the_run(cfg, tmp_path):
    """``metrics = "HOST:PORT"`` in the file: one endpoint for all the streams, each
    labelled by its name; gone once the run ends."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    write(cfg, FLOW.format(name="fl", rate=100), HL.format(name="hl", rate=100),
          top=f"backoff = 0.05\nmetrics = '127.0.0.1:0'\ndata = '{tmp_path / 'data'}'\n")

    def scrape(url):
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None)
        task = asyncio.create_task(sup.run())
        await until(lambda: frames(sup, "fl") > 3 and frames(sup, "hl") > 3, what="frames")
        url = sup.metrics.url
        text = await asyncio.to_thread(scrape, url)
        health = await asyncio.to_thread(scrape, url.replace("/metrics", "/healthz"))
        sup.stop()
        return url, text, health, await asyncio.wait_for(task, 30)

    url, text, health, results = asyncio.run(main())
    frames_in = {s.labels["stream"]: s.value
                 for family in text_string_to_metric_families(text)
                 for s in family.samples
                 if s.name == "wsrec_frames_total" and s.labels["direction"] == "in"}
    assert set(frames_in) == {"fl", "hl"} and all(v > 3 for v in frames_in.values())
    assert health.strip() == "ok"
    assert all(r.status == "complete" for r in results)
    with pytest.raises(urllib.error.URLError):
        scrape(url)


def test_serve_relays_a_stream_live_until_it_ends(cfg, tmp_path):
    """``serve`` in a stream: its own live relay, started with it, gone when it ends; a
    client reading lines gets the frames being stored, in order."""
    import socket

    path = tmp_path / "hl.sock"
    write(cfg, HL.format(name="hl", rate=200) + f'serve = "unix:{path}"\nduration = "3s"\n',
          top=f"backoff = 0.05\ndata = '{tmp_path / 'data'}'\n")
    got = []

    def read():
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(30)
        sock.connect(str(path))
        with sock:
            buf = b""
            while chunk := sock.recv(65536):
                buf += chunk
        got.extend(buf.decode().splitlines())

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None)
        task = asyncio.create_task(sup.run())
        await until(path.exists, what="the relay's socket")
        reader = asyncio.create_task(asyncio.to_thread(read))
        results = await asyncio.wait_for(task, 30)
        await asyncio.wait_for(reader, 30)
        return results

    (result,) = asyncio.run(main())
    s = assert_complete(result, "duration")
    stored = [f.payload.decode() for f in s.frames(direction="in")]
    assert len(got) > 20
    start = stored.index(got[0])
    assert stored[start:start + len(got)] == got   # what was stored, as it was stored
    assert not path.exists()   # removed when the stream ended


def test_a_stream_starting_or_closing_slowly_holds_up_no_other(cfg, tmp_path, monkeypatch):
    """The streams share one loop: building a Recorder (a bucket root is asked whether it
    is there) and sealing its last part (and waiting for its uploads) run in threads, so
    another stream's frames keep coming while one of them is slow at either."""
    from wsrec.service import supervisor as module
    from wsrec.store.rolling import RollingWriter

    write(cfg, FLOW.format(name="fast", rate=100), FLOW.format(name="slow", rate=100)
          + "max_frames = 5\n", top=f"backoff = 0.05\ndata = '{tmp_path / 'data'}'\n")
    holder, seen = {}, {}

    def other_goes_on(what):
        """Block (as a slow disk or network would) until "fast" stores 5 more frames;
        record whether it did (it can't while this blocks the loop)."""
        sup = holder["sup"]
        before = frames(sup, "fast")
        deadline = time.monotonic() + 10
        while frames(sup, "fast") < before + 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen[what] = frames(sup, "fast") - before

    class SlowToBuild(module.Recorder):
        def __init__(self, *args, **kwargs):
            if kwargs.get("label") == "slow":
                other_goes_on("build")
            super().__init__(*args, **kwargs)

    real_close = RollingWriter.close

    def slow_close(self, *args, **kwargs):
        if self.venue == "slow":
            other_goes_on("close")
        return real_close(self, *args, **kwargs)

    monkeypatch.setattr(module, "Recorder", SlowToBuild)
    monkeypatch.setattr(RollingWriter, "close", slow_close)

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None)
        holder["sup"] = sup
        task = asyncio.create_task(sup.run())
        await until(lambda: any(r.stream == "slow" for r in sup.results), what="slow ends")
        sup.stop()
        return await asyncio.wait_for(task, 30)

    results = {r.stream: r for r in asyncio.run(main())}
    assert seen["build"] >= 5 and seen["close"] >= 5, seen
    assert results["slow"].result.frames_in == 5
    assert_complete(results["slow"], "max-frames")
    assert_complete(results["fast"], "signal")


def _get(url, path):
    """(status, body) of GET ``path`` on the metrics server at ``url``."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.replace("/metrics", path), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def _samples(text, name):
    from prometheus_client.parser import text_string_to_metric_families

    return [s for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


def test_metrics_label_streams_by_name_and_report_failed_ones_down(cfg, tmp_path):
    """Two streams filing into one folder are two series (by their names, not the
    folder); a stream that failed stays, down, and /healthz names it until a reload
    removes it; a stream that ended complete is not unhealthy."""
    def shared(name):
        return FLOW.format(name=name, rate=100) + 'folder = "shared"\n'

    top = f"backoff = 0.05\nmetrics = '127.0.0.1:0'\ndata = '{tmp_path / 'data'}'\n"
    write(cfg, shared("a"), shared("b"), BAD,
          FLOW.format(name="short", rate=100) + "max_frames = 5\n", top=top)

    async def main():
        sup = Supervisor(load_config(cfg), log=lambda line: None)
        task = asyncio.create_task(sup.run())
        await until(lambda: {r.stream for r in sup.results} >= {"bad", "short"},
                    what="bad and short end")
        await until(lambda: frames(sup, "a") > 3 and frames(sup, "b") > 3, what="frames")
        url = sup.metrics.url
        text = (await asyncio.to_thread(_get, url, "/metrics"))[1]
        health = await asyncio.to_thread(_get, url, "/healthz")
        write(cfg, shared("a"), shared("b"),
              FLOW.format(name="short", rate=100) + "max_frames = 5\n", top=top)
        await sup.reload_file()
        after = (await asyncio.to_thread(_get, url, "/metrics"))[1]
        healed = await asyncio.to_thread(_get, url, "/healthz")
        sup.stop()
        return text, health, after, healed, await asyncio.wait_for(task, 30)

    text, health, after, healed, results = asyncio.run(main())
    frames_in = {s.labels["stream"]: s for s in _samples(text, "wsrec_frames_total")
                 if s.labels["direction"] == "in"}
    assert set(frames_in) == {"a", "b", "bad"}   # "short" ended complete: gone
    assert frames_in["a"].value > 3 and frames_in["b"].value > 3
    up = {s.labels["stream"]: s.value for s in _samples(text, "wsrec_up")}
    assert up["bad"] == 0 and "short" not in up
    status, body = health
    assert status == 503 and body.startswith("down: bad (alpaca) failed: alpaca error 402")
    assert "short" not in body and body.count("\n") == 1
    assert {s.labels["stream"] for s in _samples(after, "wsrec_up")} == {"a", "b"}
    assert healed == (200, "ok\n")
    by = {r.stream: r for r in results}
    assert by["a"].result.venue == by["b"].result.venue == "shared"
    assert by["a"].result.session != by["b"].result.session


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_the_relays_of_the_streams(cfg, tmp_path, capfd, quiet):
    """``quiet`` (``record --config --quiet``) reaches the streams' relays: no line about
    their clients or sockets (here: the stale socket a relay replaces)."""
    import socket

    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))   # a socket file nothing listens on
    stale.close()
    write(cfg, FLOW.format(name="fl", rate=200) + f'serve = "unix:{path}"\nmax_frames = 5\n',
          top=f"backoff = 0.05\ndata = '{tmp_path / 'data'}'\n")
    sup = Supervisor(load_config(cfg), log=lambda line: None, quiet=quiet)
    (result,) = asyncio.run(sup.run())
    assert_complete(result, "max-frames")
    err = capfd.readouterr().err
    assert ("note: replaced unix:" in err) is not quiet, err
