"""The picture of a session (wsrec.store.plot): the PNG's size, that it shows the rates,
the shaded down time and the latency panel; and the one-line error without matplotlib."""

import sys

import pytest

from wsrec.errors import WsrecError
from wsrec.store.plot import MISSING, draw, plot_session
from wsrec.store.timeline import Binner
from wsrec.timefmt import NS, format_ns

from timeline_cases import MS, T0, rows, write

np = pytest.importorskip("numpy")
image = pytest.importorskip("matplotlib.image")


def pixels(path):
    """The PNG's RGB pixels, 0..1."""
    return image.imread(str(path))[:, :, :3]


def coloured(region, tolerance=0.08):
    """Pixels that are not white, grey or black (a drawn line, a shaded span)."""
    return (region.max(axis=2) - region.min(axis=2)) > tolerance


def reddish(region):
    """The shade of a stream's down time: tab:red at 20% over white."""
    r, g, b = region[:, :, 0], region[:, :, 1], region[:, :, 2]
    return (r > 0.9) & (g < 0.9) & (g > 0.7) & (b < 0.9) & (b > 0.7)


def test_draws_rates_and_down_time(tmp_path):
    b = Binner(T0, T0 + 59 * NS, 60)
    b.add(rows([T0 + i * 100 * MS for i in range(200)] + [T0 + 50 * NS]))
    t = b.result({"gaps": [{"stream": "a", "start": format_ns(T0 + 30 * NS),
                            "end": format_ns(T0 + 45 * NS)}]})
    out = tmp_path / "rate.png"
    draw(t, out, size=(800, 500), title="test")
    px = pixels(out)
    assert px.shape == (500, 800, 3)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 1
    plot_area = px[60:440, 80:780]
    assert coloured(plot_area).sum() > 500          # the rate line
    assert reddish(plot_area).sum() > 2000           # 15 s of 60 shaded
    # the shade is where the gap is: from half way to three quarters of the axis
    columns = np.nonzero(reddish(plot_area).any(axis=0))[0]
    assert 0.45 < columns.min() / 700 < 0.55 and 0.65 < columns.max() / 700 < 0.8


def test_a_session_with_venue_times_gets_a_latency_panel(data, tmp_path):
    frames = [T0 + i * 50 * MS for i in range(400)]
    s = write(data, [ts for ts in frames if not T0 + 8 * NS <= ts < T0 + 12 * NS],
              gaps=[(T0 + 8 * NS, T0 + 12 * NS)], channels=("trades", "l2Book"))
    out = tmp_path / "s.png"
    result = plot_session(s, out, size=(1000, 600))
    # 325 rows: at most 65 buckets (5 rows each), so 500 ms ones
    assert result == {"output": str(out), "bucket": "500ms", "bucket_ns": 500 * MS,
                      "buckets": 40, "channels": ["l2Book", "trades"],
                      "latency": ["l2Book", "trades"], "gaps": 1}
    px = pixels(out)
    assert px.shape == (600, 1000, 3)
    # coloured lines in both halves: rates above, latency below
    assert coloured(px[60:300, 80:980]).sum() > 500
    assert coloured(px[380:540, 80:980]).sum() > 300


def test_without_venue_times_one_panel(data, tmp_path):
    s = write(data, [T0 + i * 10 * MS for i in range(100)], venue="somewhere")
    result = plot_session(s, tmp_path / "one.png", bucket_ns=100 * MS)
    assert result["latency"] == [] and result["buckets"] == 10
    px = pixels(tmp_path / "one.png")
    assert px.shape == (700, 1200, 3) and coloured(px[30:650, 70:1180]).sum() > 500


def test_empty_and_one_frame_sessions_draw(data, tmp_path):
    for name, frames in (("empty", []), ("one", [T0 + 5 * NS])):
        s = write(data / name, frames)
        plot_session(s, tmp_path / f"{name}.png", size=(400, 300))
        px = pixels(tmp_path / f"{name}.png")
        assert px.shape == (300, 400, 3) and len(np.unique(px.reshape(-1, 3), axis=0)) > 1


def test_many_channels_are_summed_after_the_first_eight(data, tmp_path):
    names = tuple(f"c{i}" for i in range(11))
    s = write(data, [T0 + i * MS for i in range(200)], venue="somewhere", channels=names)
    result = plot_session(s, tmp_path / "many.png", size=(400, 300))
    assert result["channels"] == [f"c{i}" for i in (0, 1, 10, 2, 3, 4, 5, 6)] + \
        ["3 more channels"]


def test_an_unwritable_output_is_one_line(data, tmp_path):
    s = write(data, [T0 + 1])
    with pytest.raises(WsrecError, match=r"cannot write .*/missing/x.png: No such file"):
        plot_session(s, tmp_path / "missing" / "x.png")


def test_without_matplotlib_one_line_and_nothing_read(data, tmp_path, monkeypatch):
    s = write(data, [T0])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(type(s), "batches", lambda *a, **kw: pytest.fail("read the session"))
    with pytest.raises(WsrecError) as caught:
        plot_session(s, tmp_path / "x.png")
    assert str(caught.value) == MISSING == \
        "wsrec plot needs matplotlib: pip install 'wsrec[plot]'"
    assert not (tmp_path / "x.png").exists()
