"""`wsrec info`'s rate timeline and `wsrec plot`, through the real commands."""

import json
import sys

import pytest

from wsrec.timefmt import NS

from timeline_cases import MS, T0, write


@pytest.fixture
def session(data):
    """60 s: 10 frames a second, down from 20 s to 30 s, silent from 40 s to 50 s."""
    frames = [T0 + i * 100 * MS for i in range(600)]
    return write(data, [ts for ts in frames
                        if not (T0 + 20 * NS <= ts < T0 + 30 * NS or
                                T0 + 40 * NS <= ts < T0 + 50 * NS)],
                 gaps=[(T0 + 20 * NS, T0 + 30 * NS)])


def test_info_shows_a_timeline_per_stream(run, session):
    result = run("info", session.id, "--width", 6)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("timeline")][0]
    assert lines[at:at + 2] == [
        "timeline     10s/column from 2026-11-18T00:00:00Z ('·' down, ' ' silent)",
        "             main  ██·█ █  peak 10.0/s",
    ]


def test_info_timeline_fits_the_terminal(run, session):
    wide = run("info", session.id, env={"COLUMNS": "141"}).stdout
    narrow = run("info", session.id, env={"COLUMNS": "70"}).stdout
    line = [x for x in wide.splitlines() if x.strip().startswith("main")][0]
    # 100 columns: 1 s buckets, 60 of them
    assert line == "             main  " + "█" * 20 + "·" * 10 + "█" * 10 + " " * 10 + \
        "█" * 10 + "  peak 10.0/s"
    line = [x for x in narrow.splitlines() if x.strip().startswith("main")][0]
    # 29 columns: 5 s buckets, 12 of them
    assert line == "             main  ████··██  ██  peak 10.0/s"


def test_info_json_has_the_bucket_counts(run, session):
    d = json.loads(run("info", session.id, "--json").stdout)
    t = d["timeline"]
    assert (t["start"], t["bucket_ns"], t["buckets"]) == ("2026-11-18T00:00:00Z", NS, 60)
    main = t["streams"]["main"]
    assert main["frames"] == [10] * 20 + [0] * 10 + [10] * 10 + [0] * 10 + [10] * 10
    assert main["down"] == [False] * 20 + [True] * 10 + [False] * 30
    d = json.loads(run("info", session.id, "--json", "--width", 3).stdout)
    assert d["timeline"]["bucket_ns"] == 30 * NS
    assert d["timeline"]["streams"]["main"]["frames"] == [200, 200]


def test_info_of_an_empty_session(run, data):
    s = write(data, [])   # started and ended at one instant: one bucket
    out = run("info", s.id).stdout.splitlines()
    at = [i for i, line in enumerate(out) if line.startswith("timeline")][0]
    assert out[at:at + 2] == [
        "timeline     1ns/column from 2026-11-18T00:00:00Z ('·' down, ' ' silent)",
        "             main     no frames"]


def test_plot_writes_a_png(run, session, tmp_path, monkeypatch):
    image = pytest.importorskip("matplotlib.image")
    monkeypatch.chdir(tmp_path)
    result = run("plot", session.id, "--size", "640x480")
    assert result.exit_code == 0, result.output
    out = tmp_path / f"{session.id}-rate.png"
    assert result.stdout == "" and result.stderr == \
        f"wrote {out.name} (640x480, 60 buckets of 1s)\n"   # 405 rows: at most 81
    px = image.imread(str(out))
    assert px.shape[:2] == (480, 640) and px[:, :, :3].min() < 0.5
    result = run("plot", session.id, "-o", tmp_path / "r.png", "--bucket", "10s", "--json")
    assert json.loads(result.stdout) == {
        "output": str(tmp_path / "r.png"), "bucket": "10s", "bucket_ns": 10 * NS,
        "buckets": 6, "channels": ["trades"], "latency": ["trades"], "gaps": 1}
    assert image.imread(str(tmp_path / "r.png")).shape[:2] == (700, 1200)
    before = (tmp_path / "r.png").read_bytes()
    result = run("plot", session.id, "-o", tmp_path / "r.png", "--size", "300x200")
    assert result.exit_code == 1 and result.stderr == \
        f"Error: {tmp_path / 'r.png'} exists; pass --force to replace it\n"
    assert (tmp_path / "r.png").read_bytes() == before
    result = run("plot", session.id, "-o", tmp_path / "r.png", "--size", "300x200", "--force")
    assert result.exit_code == 0 and result.stderr.startswith("wrote ")   # no warning
    assert image.imread(str(tmp_path / "r.png")).shape[:2] == (200, 300)


@pytest.mark.parametrize("args, message", [
    (["--size", "big"], "not a picture size: 'big'"),
    (["--size", "50x50"], "300x200 to 20000x20000"),
    (["--size", "299x700"], "300x200 to 20000x20000"),
    (["--bucket", "soon"], "not a duration"),
    (["--bucket", "1ns"], "choose a wider bucket"),
])
def test_plot_usage_errors_exit_2(run, session, args, message, tmp_path):
    result = run("plot", session.id, "-o", tmp_path / "x.png", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_is_one_line(run, session, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run("plot", session.id, "-o", tmp_path / "x.png")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "Error: wsrec plot needs matplotlib: pip install 'wsrec[plot]'\n"
