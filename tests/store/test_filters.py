import pyarrow as pa
import pytest

from wsrec.store.filters import Filters, _any_in, split_list


def test_split_list():
    assert split_list(None) is None
    assert split_list("") is None
    assert split_list("a, b,,c") == {"a", "b", "c"}
    assert split_list(["a,b", "c"]) == {"a", "b", "c"}


def test_make_validates():
    with pytest.raises(ValueError, match="start is after end"):
        Filters.make(start="2026-01-02", end="2026-01-01")
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
