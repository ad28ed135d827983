import pytest

from wsrec.errors import AmbiguousSession, SessionNotFound
from wsrec.store import data_root, resolve, session_folders

from conftest import write_session


@pytest.fixture
def root(tmp_path):
    data = tmp_path / "data"
    for venue, sid in [("alpaca", "20260101T000000Z-aaaa"), ("alpaca", "20260102T000000Z-bbbb"),
                       ("flow", "20260103T000000Z-cccc"), ("flow", "20260101T000000Z-dddd")]:
        write_session(data, n=5, venue=venue, session_id=sid)
    return data


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("WSREC_DATA", raising=False)
    assert str(data_root()) == "wsrec-data"
    monkeypatch.setenv("WSREC_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root("x") .name == "x"


def test_session_folders_sorted_by_start(root):
    assert [f.name[-4:] for f in session_folders(root)] == ["aaaa", "dddd", "bbbb", "cccc"]
    assert [f.name[-4:] for f in session_folders(root, "alpaca")] == ["aaaa", "bbbb"]
    assert session_folders(root, "nope") == []


@pytest.mark.parametrize("ref,expected", [
    ("last", "cccc"), ("alpaca", "bbbb"), ("flow", "cccc"),
    ("20260101T000000Z-aaaa", "aaaa"), ("20260102", "bbbb"), ("alpaca/20260101", "aaaa"),
    ("flow/20260101", "dddd"),
])
def test_resolve(root, ref, expected):
    assert resolve(ref, root).name.endswith(expected)


def test_resolve_path(root):
    folder = session_folders(root)[0]
    assert resolve(str(folder), root) == folder
    assert resolve(folder) == folder
    with pytest.raises(SessionNotFound, match="not a session folder"):
        resolve(str(root / "alpaca"), root)


def test_resolve_errors(root, tmp_path):
    with pytest.raises(AmbiguousSession, match="matches 2 sessions"):
        resolve("20260101", root)
    with pytest.raises(SessionNotFound, match="no session matches 'zzz'"):
        resolve("zzz", root)
    with pytest.raises(SessionNotFound, match="no sessions under"):
        resolve("last", tmp_path / "empty")
