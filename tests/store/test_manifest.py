import json
import os

import pytest

from wsrec.errors import CorruptData
from wsrec.store.manifest import (MAX_MANIFEST_BYTES, REBUILD_HINT, ManifestError, check_manifest,
                                  load_manifest, new_session_id, save_manifest)

from manifest_cases import BROKEN, DELETE, FULL, with_field

GOOD = {"format_version": 1, "venue": "v", "session": "s", "status": "complete", "parts": []}



def test_save_is_atomic_and_leaves_no_temp(tmp_path):
    save_manifest(tmp_path, GOOD)
    assert load_manifest(tmp_path) == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


def test_a_full_manifest_and_the_samples_load(tmp_path):
    save_manifest(tmp_path, FULL)
    assert load_manifest(tmp_path) == FULL
    from pathlib import Path
    here = Path(__file__).resolve().parents[1]
    folders = list((here.parent / "samples").glob("venue=*/date=*/*")) + \
        list((here / "data/v1").glob("*/*"))
    assert len(folders) >= 8
    for folder in folders:
        load_manifest(folder)


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"), ("[1]", "not a JSON object"),
    (json.dumps({**GOOD, "status": "weird"}), "field status is \"weird\", not one of"),
    (json.dumps({**GOOD, "format_version": 99}), "upgrade wsrec"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "parts"}), "field parts is missing"),
    ("", "not valid JSON"), (b"\xff\xfe{}", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # too deep for the parser
    ('{"rows": ' + "9" * 5000 + "}", "not valid JSON"),   # too many digits
])
def test_bad_manifests(tmp_path, text, match):
    path = tmp_path / "session.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CorruptData, match=match) as info:
        load_manifest(tmp_path)
    assert "\n" not in str(info.value) and "session.json" in str(info.value)
    assert path.read_bytes() == (text if isinstance(text, bytes) else text.encode())




@pytest.mark.parametrize("path,value,field", BROKEN,
                         ids=[f"{p}={'DELETE' if v is DELETE else repr(v)[:30]}"
                              for p, v, _ in BROKEN])
def test_every_field_is_checked(tmp_path, path, value, field):
    text = json.dumps(with_field(path, value))
    (tmp_path / "session.json").write_text(text)
    (tmp_path / "part-000000.parquet").write_bytes(b"x")  # something to rebuild from
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'session.json'}: ")
    assert field in message, message
    assert info.value.field.split(".")[0].split("[")[0] == field.split(".")[0].split("[")[0]
    if path != "format_version" or value != 3:
        assert message.endswith(REBUILD_HINT)


def test_a_newer_format_says_upgrade_wsrec(tmp_path):
    (tmp_path / "session.json").write_text(json.dumps({**FULL, "format_version": 3}))
    with pytest.raises(ManifestError, match=r"format_version 3 is newer than this wsrec "
                                            r"understands \(2\); upgrade wsrec$"):
        load_manifest(tmp_path)


def test_nothing_to_rebuild_from_says_so(tmp_path):
    (tmp_path / "session.json").write_text(json.dumps({**FULL, "started": "garbage"}))
    with pytest.raises(ManifestError, match="no part or journal to rebuild it from"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("path,value", [
    ("parts.0.mono_first", DELETE), ("parts.0.mono_last", DELETE),
    ("parts.0.raw_bytes", DELETE), ("connections", DELETE), ("gaps", DELETE),
    ("args", DELETE), ("args", None), ("settings", DELETE), ("error", DELETE),
    ("wsrec_version", DELETE), ("started", DELETE), ("ended", None), ("started", None),
    ("settings.unknown", "anything"), ("extra", {"any": "thing"}),
    ("connections.0.stream", DELETE), ("connections.0.conn", None),
    ("connections.0.code", "any JSON value"), ("gaps.0.mono_start", None),
    ("gaps.0.stream", None), ("started", "2026-11-18 11:06:40+01:00"),
    ("gaps.0.start", "2026-11-18T11:06:47Z"),  # wall clock stepped back: start > end is fine
    ("settings.compression_level", None),       # the default level
    ("parts.0.rows", 0),
    ("lost", [{"file": "part-000002.journal.damaged", "offset": 0, "bytes": 10, "rows": None,
               "seq_first": 5, "seq_last": None}]),
])
def test_optional_and_lenient_fields(tmp_path, path, value):
    save_manifest(tmp_path, with_field(path, value))
    load_manifest(tmp_path)


def test_format_1_parts_need_only_file_and_rows(tmp_path):
    v1 = {**GOOD, "parts": [{"file": "part-000000.parquet", "rows": 3,
                             "start": "2026-11-18T09:46:40Z", "end": "2026-11-18T09:46:41Z"}],
          "connections": [{"conn": 0}], "gaps": [{"whatever": 1}]}  # recomputed on upgrade
    save_manifest(tmp_path, v1)
    assert load_manifest(tmp_path) == v1
    v1["parts"][0]["file"] = "../x/part-000000.parquet"
    save_manifest(tmp_path, v1)
    with pytest.raises(ManifestError, match=r"parts\[0\]\.file"):
        load_manifest(tmp_path)


def test_a_huge_manifest_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "session.json"
    with open(path, "wb") as f:   # sparse: no disk used
        f.truncate(MAX_MANIFEST_BYTES + 1)
    opened = []
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a) or 1 / 0)
    with pytest.raises(ManifestError, match=r"over the 64 MiB limit, so it was not read"):
        load_manifest(tmp_path)
    assert opened == []


def test_not_a_regular_file_and_missing(tmp_path):
    (tmp_path / "session.json").mkdir()
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(tmp_path)
    os.rmdir(tmp_path / "session.json")
    with pytest.raises(ManifestError, match="not a wsrec session folder") as info:
        load_manifest(tmp_path)
    assert info.value.missing
    (tmp_path / "part-000000.parquet").write_bytes(b"x")
    (tmp_path / "part-000001.journal").write_bytes(b"x")
    with pytest.raises(ManifestError, match=r"holds 2 part or journal file\(s\); run 'wsrec "
                                            r"repair' to rebuild it from the parts"):
        load_manifest(tmp_path)


def test_check_manifest_takes_parsed_data(tmp_path):
    check_manifest(FULL, tmp_path / "session.json")
    with pytest.raises(ManifestError, match=r"field parts\[1\]\.file lists part-000000"):
        check_manifest(with_field("parts.1.file", "part-000000.parquet"), tmp_path / "session.json")


def test_manifest_args_are_redacted_by_the_secrets_module():
    from wsrec.secrets import redact
    args = {"key_id": "AK", "secret_key": "s", "symbols": ["A"], "nested": {"token": "t"},
            "params": [{"password": "p", "x": 1}], "auth": None}
    assert redact(args) == {"key_id": "***", "secret_key": "***", "symbols": ["A"],
                            "nested": {"token": "***"},
                            "params": [{"password": "***", "x": 1}], "auth": None}


def test_new_session_id_sorts_by_time():
    a = new_session_id(1_700_000_000 * 10**9)
    b = new_session_id(1_700_000_001 * 10**9)
    assert a.startswith("20231114T221320Z-") and a < b


def test_the_samples_show_a_reconnect_and_a_gap():
    """One sample session (samples/make_samples.py) has a reconnect and the gap before it,
    for ``wsrec info`` and ``replay --skip-gaps`` to show."""
    from pathlib import Path
    samples = Path(__file__).resolve().parents[2] / "samples"
    manifests = {f.parent.parent.parent.name: load_manifest(f.parent)
                 for f in samples.glob("venue=*/date=*/*/session.json")}
    assert len(manifests) == 5
    hl = manifests["venue=hyperliquid"]
    assert len(hl["connections"]) == 2 and hl["connections"][0]["code"] == 1006
    [gap] = hl["gaps"]
    assert gap["after_conn"] == 0 and gap["conn"] == 1 and gap["duration_ns"] > 500_000_000
