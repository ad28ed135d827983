import json

import pytest

from wsrec.errors import CorruptData
from wsrec.manifest import load_manifest, new_session_id, redact, save_manifest

GOOD = {"format_version": 1, "venue": "v", "session": "s", "status": "complete", "parts": []}


def test_save_is_atomic_and_leaves_no_temp(tmp_path):
    save_manifest(tmp_path, GOOD)
    assert load_manifest(tmp_path) == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"), ("[1]", "not a JSON object"),
    (json.dumps({**GOOD, "status": "weird"}), "unknown status"),
    (json.dumps({**GOOD, "format_version": 99}), "upgrade wsrec"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "parts"}), "'parts'"),
])
def test_bad_manifests(tmp_path, text, match):
    (tmp_path / "session.json").write_text(text)
    with pytest.raises(CorruptData, match=match) as info:
        load_manifest(tmp_path)
    assert "\n" not in str(info.value) and "session.json" in str(info.value)
    assert (tmp_path / "session.json").read_text() == text  # untouched


def test_redact():
    args = {"key_id": "AK", "secret_key": "s", "symbols": ["A"], "nested": {"token": "t"},
            "params": [{"password": "p", "x": 1}], "auth": None}
    assert redact(args) == {"key_id": "***", "secret_key": "***", "symbols": ["A"],
                            "nested": {"token": "***"},
                            "params": [{"password": "***", "x": 1}], "auth": None}


def test_new_session_id_sorts_by_time():
    a = new_session_id(1_700_000_000 * 10**9)
    b = new_session_id(1_700_000_001 * 10**9)
    assert a.startswith("20231114T221320Z-") and a < b
