import pyarrow as pa
import pytest

from wsrec.filters import Filters, _any_in, split_list


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
