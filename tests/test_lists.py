import pytest

from wsrec.errors import UsageError
from wsrec.lists import split_list


def test_split_list():
    assert split_list(None) == [] and split_list("") == [] and split_list([]) == []
    assert split_list("a, b,,c") == ["a", "b", "c"]
    assert split_list(["b,a", "c", "a"]) == ["b", "a", "c"]      # order kept, repeats dropped
    assert split_list(("x",)) == ["x"]


def test_split_list_separators():
    assert split_list("a|b,c") == ["a|b", "c"]
    assert split_list("a|b,c", seps=",|") == ["a", "b", "c"]


def test_split_list_refuses_what_is_not_text():
    with pytest.raises(UsageError, match=r"symbol b'x\\x80' is not valid UTF-8 text") as caught:
        split_list(["AAPL", "x\udc80"], "symbol", param="symbols")
    assert caught.value.param == "symbols" and isinstance(caught.value, ValueError)
    with pytest.raises(UsageError, match=r"value '\\ud800' is not valid UTF-8 text"):
        split_list("\ud800")
