import pyarrow as pa
import pyarrow.compute as pc
import pytest

import wsrec
from wsrec.errors import UsageError
from wsrec.store.filters import Filters, _any_in, _one_of

from conftest import write_session


def test_make_takes_comma_lists():
    assert Filters.make(symbols=None).symbols is None
    assert Filters.make(symbols="").symbols is None
    assert Filters.make(symbols="a, b,,c").symbols == {"a", "b", "c"}
    assert Filters.make(channels=["a,b", "c"]).channels == {"a", "b", "c"}


def test_make_validates():
    with pytest.raises(UsageError, match="start is after end") as caught:
        Filters.make(start="2026-01-02", end="2026-01-01")
    assert caught.value.param == ("start", "end")
    with pytest.raises(ValueError, match="unknown direction"):
        Filters.make(direction="sideways")
    with pytest.raises(ValueError, match="ISO 8601"):
        Filters.make(start="noon")
    assert Filters.make(direction="all").directions is None
    assert Filters.make().empty


def test_any_in_handles_slices_nulls_and_dictionaries():
    lists = pa.array([["a"], [], None, ["b", "c"], ["c"], ["a", "c"]], pa.list_(pa.string()))
    values = pa.array(["a"])
    assert _any_in(lists, values).to_pylist() == [True, False, False, False, False, True]
    assert _any_in(lists.slice(3), pa.array(["c"])).to_pylist() == [True, True, True]
    d = lists.cast(pa.list_(pa.dictionary(pa.int32(), pa.string())))
    assert _any_in(d.slice(1, 3), pa.array(["b"])).to_pylist() == [False, False, True]


@pytest.mark.parametrize("wanted", [[], ["in"], ["in", "event"], ["nothing"]])
def test_one_of_is_is_in_with_null_as_no(wanted):
    """Direction and kind filters: as ``fill_null(is_in(...), False)``, on plain, sliced
    and dictionary columns (Parquet's, read back)."""
    dirs = pa.array(["in", "out", None, "event", "in"])
    for values in (dirs, dirs.slice(1), dirs.dictionary_encode().slice(2)):
        expected = pc.fill_null(pc.is_in(values, value_set=pa.array(wanted, pa.string())), False)
        assert _one_of(values, pa.array(wanted, pa.string())).equals(expected)


def test_overlaps():
    f = Filters(start=10, end=20)
    assert f.overlaps(0, 10) and f.overlaps(19, 30) and f.overlaps(None, None)
    assert not f.overlaps(0, 9) and not f.overlaps(20, 30)


@pytest.mark.parametrize("kw,message", [
    (dict(end="3000-01-01"), "end: '3000-01-01' is outside"),
    (dict(start="1600-01-01"), "start: '1600-01-01' is outside"),
    (dict(start=2**63), "start: 9223372036854775808 is outside"),
    (dict(end=-(2**63)), "end: -9223372036854775808 is outside"),
])
def test_make_refuses_unrepresentable_times(kw, message):
    with pytest.raises(ValueError, match=message):
        Filters.make(**kw)


@pytest.mark.parametrize("bad", [dict(start=2**63), dict(end=-(2**64)), dict(start=1.5),
                                 dict(end="2026-01-01"), dict(start=True)])
def test_filters_hold_only_int64_times(bad):
    with pytest.raises(ValueError, match="int nanoseconds"):
        Filters(**bad)


@pytest.mark.parametrize("option,value,shown", [
    ("channels", "\udcff\udcfe", r"channel b'\\xff\\xfe' is not valid UTF-8 text"),
    ("symbols", ["AAPL", "x\udc80"], r"symbol b'x\\x80' is not valid UTF-8 text"),
    ("symbols", "\ud800", r"symbol '\\ud800' is not valid UTF-8 text"),
    ("kind", "\udcff", "kind b'\\\\xff' is not valid UTF-8 text"),
])
def test_values_that_are_not_text_are_refused(option, value, shown):
    with pytest.raises(ValueError, match=shown):
        Filters.make(**{option: value})


def test_values_that_are_not_text_match_nothing_at_the_arrow_level():
    batch = pa.record_batch([pa.array([["a"], ["\u00e9"]], pa.list_(pa.string())),
                             pa.array(["in", "in"])], names=["channels", "kind"])
    f = Filters(channels=frozenset({"\udcff", "a"}), kinds=frozenset({"\udcff"}))
    assert f.row_mask(batch).to_pylist() == [False, False]
    assert Filters(channels=frozenset({"\udcff", "a"})).row_mask(batch).to_pylist() == \
        [True, False]


def test_errors_name_the_argument():
    for kw, param in ((dict(start="noon"), "start"), (dict(end="+1x"), "end"),
                      (dict(direction="up"), "direction"), (dict(symbols="\udcff"), "symbols"),
                      (dict(channels=["ok", "\udcff"]), "channels")):
        with pytest.raises(UsageError) as caught:
            Filters.make(**kw)
        assert caught.value.param == param and isinstance(caught.value, ValueError)


# -- offsets: '+30s' from a start --------------------------------------------------------------

def test_make_counts_offsets_from_the_origin():
    f = Filters.make(start="+1.5s", end="+2m", origin=10**18)
    assert (f.start, f.end) == (10**18 + 1_500_000_000, 10**18 + 120 * 10**9)
    with pytest.raises(UsageError, match="start: '\\+1s' is an offset, and there is no start"):
        Filters.make(start="+1s")
    with pytest.raises(UsageError, match="end: not a duration: ''"):
        Filters.make(end="+", origin=0)


def test_for_sessions_counts_from_the_earliest_start(data):
    a, _ = write_session(data, n=50, venue="alpaca")
    b, _ = write_session(data, n=50, venue="hyperliquid")
    sa, sb = wsrec.open_session(a), wsrec.open_session(b)
    origin = min(sa.start_ns, sb.start_ns)
    f = Filters.for_sessions([sa, sb], start="+1s", end="+1m", symbols="AAPL")
    assert f == Filters.make(start=origin + 10**9, end=origin + 60 * 10**9, symbols="AAPL")
    assert Filters.for_sessions(sa, start="+0s").start == sa.start_ns


def test_session_batches_take_offsets_as_the_cli_does(data):
    from click.testing import CliRunner

    from wsrec.cli.commands import cli
    folder, _ = write_session(data, n=300, venue="alpaca", started_ns=1_795_000_000_000_000_000)
    s = wsrec.open_session(folder)
    offset = "+150ms"
    mine = [f.payload for f in s.frames(start=offset)]
    assert 0 < len(mine) < s.rows()
    assert mine == [f.payload for f in s.frames(start=s.start_ns + 150_000_000)]
    out = CliRunner().invoke(cli, ["convert", str(folder), "--format", "jsonl", "-q",
                                   "--start", offset, "--direction", "all"])
    assert out.exit_code == 0, out.output
    assert len(out.stdout.splitlines()) == len(mine)
