import pytest

from wsrec.errors import AmbiguousSession, SessionNotFound
from wsrec.store.roots import data_root, resolve, session_folders

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
        resolve(str(folder.parent), root)  # venue=alpaca/date=...: not a session


def test_resolve_errors(root, tmp_path):
    with pytest.raises(AmbiguousSession, match="matches 2 sessions"):
        resolve("20260101", root)
    with pytest.raises(SessionNotFound, match="no session matches 'zzz'"):
        resolve("zzz", root)
    with pytest.raises(SessionNotFound, match="no sessions under"):
        resolve("last", tmp_path / "empty")


# -- sessions that can't be read are listed, never hidden, never fatal ----------------------

def test_folders_without_a_manifest_but_with_data_are_listed(root):
    stray = root / "alpaca" / "20260105T000000Z-nnnn"   # the layout before venue=/date=
    stray.mkdir(parents=True)
    (stray / "part-000000.parquet").write_bytes(b"x")
    (root / "alpaca" / "not-a-session").mkdir()          # nothing in it: not listed
    (root / "alpaca" / ".upgrade-x").mkdir()             # hidden: not listed
    (root / "alpaca" / ".upgrade-x" / "session.json").write_text("{}")
    names = [f.name[-4:] for f in session_folders(root)]
    assert names == ["aaaa", "dddd", "bbbb", "cccc", "nnnn"]
    assert resolve(str(stray), root) == stray            # opening it says what is wrong
    assert resolve("20260105", root) == stray


def test_last_and_venue_skip_unreadable_sessions_with_a_warning(root):
    newest, _ = write_session(root, n=5, venue="flow", session_id="20260109T000000Z-eeee")
    text = (newest / "session.json").read_text()
    (newest / "session.json").write_text(text.replace('"started": "', '"started": "garbage'))
    warnings = []
    assert resolve("last", root, warn=warnings.append).name.endswith("cccc")
    assert resolve("flow", root, warn=warnings.append).name.endswith("cccc")
    assert len(warnings) == 2 and all("flow/20260109T000000Z-eeee" in w and "started" in w
                                      for w in warnings)
    # named explicitly, it is what the user asked for: opening it gives the error
    assert resolve("20260109", root) == newest
    flow = root / "venue=flow"
    (flow / "date=2026-01-03" / "20260103T000000Z-cccc" / "session.json").write_text("[]")
    (flow / "date=2026-01-01" / "20260101T000000Z-dddd" / "session.json").unlink()
    (flow / "date=2026-01-01" / "20260101T000000Z-dddd" / "part-000000.parquet").unlink()
    with pytest.raises(SessionNotFound, match="venue 'flow' has no readable session"):
        resolve("flow", root, warn=warnings.append)


def test_an_unlistable_venue_is_a_warning(root, monkeypatch):
    import os
    real = os.scandir
    denied = str(root / "venue=flow")

    def scandir(path="."):
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    warnings = []
    assert [f.name[-4:] for f in session_folders(root, warn=warnings.append)] == \
        ["aaaa", "bbbb"]
    assert warnings == [f"cannot read {denied}: Permission denied; its sessions are not "
                        f"listed"]
    with pytest.raises(SessionNotFound, match="Permission denied"):
        session_folders(root, "flow", warn=warnings.append)  # asked for by name: an error
    assert resolve("last", root, warn=warnings.append).name.endswith("bbbb")
