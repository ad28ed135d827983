"""Completion of option and argument values (wsrec.cli.completion), through click's own
completion API on a data root of fake session folders: the folders the store lays out,
each with a small session.json, and no parquet (completion reads none)."""

from __future__ import annotations

import json
import os

import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from wsrec.cli import completion
from wsrec.cli.commands import cli
from wsrec.store.layout import session_rel
from wsrec.venues import VENUES

A1, A2 = "20261122T000000Z-aaa1", "20261123T101500Z-aaa2"
H1 = "20261123T090000Z-hhh1"
F1 = "20261121T120000Z-fff1"                    # legacy layout: <root>/flow/<id>/


def _session(root, venue, sid, symbols=(), legacy=False):
    folder = root / (f"{venue}/{sid}" if legacy else session_rel(venue, sid))
    folder.mkdir(parents=True)
    manifest = {"venue": venue, "session": sid, "args": {"venue": venue,
                                                         "symbols": list(symbols)}}
    (folder / "session.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv("WSREC_DATA", raising=False)
    root = tmp_path / "data"
    _session(root, "alpaca", A1, ["AAPL", "MSFT"])
    _session(root, "alpaca", A2, ["FAKEPACA", "AAPL"])
    _session(root, "hyperliquid", H1, ["BTC", "ETH"])
    _session(root, "flow", F1, legacy=True)
    return root


def complete(args, incomplete=""):
    """(type, value) of each completion of ``incomplete`` after ``wsrec ARGS``."""
    comp = ShellComplete(cli, {}, "wsrec", "_WSREC_COMPLETE")
    return [(item.type, item.value) for item in comp.get_completions(
        [str(a) for a in args], incomplete)]


def values(args, incomplete=""):
    items = complete(args, incomplete)
    assert all(kind == "plain" for kind, _ in items), items
    return [value for _, value in items]


# -- SESSION -----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["info", "verify", "repair", "replay", "convert"])
def test_session_offers_last_venues_and_ids_newest_first(root, command):
    assert values([command, "--data", root]) == [
        "last", "alpaca", "flow", "hyperliquid", A2, H1, A1, F1]


def test_session_prefixes(root):
    assert values(["info", "--data", root], "h") == ["hyperliquid"]
    assert values(["info", "--data", root], "l") == ["last"]
    assert values(["info", "--data", root], "202611") == [A2, H1, A1, F1]
    assert values(["info", "--data", root], "20261123") == [A2, H1]
    assert values(["replay", "--data", root], "alpaca/") == [f"alpaca/{A2}", f"alpaca/{A1}"]
    assert values(["replay", "--data", root], "alpaca/20261122") == [f"alpaca/{A1}"]
    assert values(["replay", "--data", root], "flow/") == [f"flow/{F1}"]


def test_sessions_given_are_not_offered_again(root):
    assert values(["replay", "--data", root, A2, "alpaca"]) == [
        "last", "flow", "hyperliquid", H1, A1, F1]


def test_session_root_from_the_environment_else_the_default(root, monkeypatch, tmp_path):
    monkeypatch.setenv("WSREC_DATA", str(root))
    assert values(["info"], "20261123") == [A2, H1]
    monkeypatch.delenv("WSREC_DATA")
    monkeypatch.chdir(root.parent)
    os.rename(root, root.parent / "wsrec-data")
    assert values(["info"], "20261123") == [A2, H1]
    assert values(["info", "--data", "wsrec-data"], "hy") == ["hyperliquid"]


def test_session_folder_paths_are_left_to_the_shell(root, monkeypatch):
    """A path (or anything no session matches) completes as a folder, which the shell
    does: bash's click script runs ``compopt -o dirnames`` for a ``dir`` item."""
    monkeypatch.chdir(root.parent)
    assert complete(["info", "--data", root], "./da") == [("dir", "./da")]
    assert complete(["info", "--data", root], f"{root}/venue=al") == [("dir", f"{root}/venue=al")]
    assert complete(["info", "--data", root], "data/venue=") == [("dir", "data/venue=")]
    assert complete(["info", "--data", root], "da") == [("dir", "da")]
    assert complete(["replay", "--data", root], "alpaca/zz") == [("dir", "alpaca/zz")]


def test_session_completion_lists_folders_only(root, monkeypatch):
    """Listing needs no manifest and no part: ids come from the folder names."""
    for folder in root.rglob("session.json"):
        folder.unlink()
    assert values(["info", "--data", root], "2026") == [A2, H1, A1, F1]


def test_a_damaged_root_completes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("WSREC_DATA", raising=False)
    junk = tmp_path / "junk"
    (junk / "venue=bad=name" / "date=2026-11-22" / A1).mkdir(parents=True)
    (junk / "venue=ok" / "date=not-a-date" / A1).mkdir(parents=True)
    (junk / "venue=ok" / "date=2026-11-22").mkdir(parents=True)
    (junk / "venue=ok" / "date=2026-11-22" / "not a session").mkdir()
    (junk / "venue=ok" / "date=2026-11-22" / "file").write_text("")
    (junk / "legacy" / ".hidden").mkdir(parents=True)
    (junk / "afile").write_text("")
    assert complete(["info", "--data", junk]) == [("dir", "")]
    (tmp_path / "notadir").write_text("")
    for bad in (tmp_path / "notadir", tmp_path / "missing", "s3://bucket/prefix"):
        assert complete(["info", "--data", bad]) == [("dir", "")]
        assert complete(["replay", "--data", bad, "last", "-s"]) == []
        assert complete(["ls", "--data", bad]) == []


def test_a_completion_function_never_raises(root, monkeypatch):
    def broken(root):
        raise RuntimeError("boom")
    monkeypatch.setattr(completion, "_sessions", broken)
    assert complete(["info", "--data", root]) == []
    assert complete(["replay", "--data", root, "last", "-c"]) == []
    assert complete(["record", "alpaca", "--data", root, "-s"]) == []


def test_file_data_url_root(root):
    assert values(["info", "--data", f"file://{root}"], "20261123") == [A2, H1]


# -- channels and symbols ----------------------------------------------------------------------

def test_record_channels_are_the_venues(root):
    assert values(["record", "alpaca", "-c"]) == list(VENUES["alpaca"].channels)
    assert values(["record", "hyperliquid", "--channels"], "l2") == ["l2Book"]
    assert values(["record", "-c", "trades", "hyperliquid", "--channel"], "c") == ["candle"]
    assert values(["record", "url", "-c"]) == []         # no channels
    assert values(["record", "-c"]) == []                # no venue yet


def test_lists_complete_the_item_after_the_last_comma(root):
    assert values(["record", "alpaca", "-c"], "trades,q") == ["trades,quotes"]
    assert values(["record", "alpaca", "-c"], "trades,quotes,") == [
        f"trades,quotes,{c}" for c in VENUES["alpaca"].channels if c not in ("trades",
                                                                              "quotes")]
    assert values(["record", "alpaca", "-c"], "nosuch,") == [
        f"nosuch,{c}" for c in VENUES["alpaca"].channels]
    assert values(["record", "alpaca", "--data", root, "-s"], "AAPL,") == [
        "AAPL,FAKEPACA", "AAPL,MSFT", "AAPL,NVDA", "AAPL,SPY", "AAPL,TSLA", "AAPL,BTC/USD",
        "AAPL,ETH/USD"]


def test_record_symbols_are_those_the_venue_was_recorded_with(root):
    """Newest session first, each symbol once, then the venue's examples."""
    assert values(["record", "alpaca", "--data", root, "-s"]) == [
        "FAKEPACA", "AAPL", "MSFT", "NVDA", "SPY", "TSLA", "BTC/USD", "ETH/USD"]
    assert values(["record", "hyperliquid", "--data", root, "--symbols"], "E") == ["ETH"]
    assert values(["record", "hyperliquid", "--data", root, "-s"], "BTC,") == [
        "BTC,ETH", "BTC,SOL"]
    assert values(["record", "dfuse", "--data", root, "-s"]) == ["eosio", "eosio.token"]
    assert values(["record", "vega", "--data", root, "-s"]) == []


def test_only_the_newest_manifests_are_read(tmp_path):
    for day in range(completion.MANIFESTS_READ + 2):
        _session(tmp_path, "alpaca", f"202611{day + 1:02d}T000000Z-x", [f"S{day}"])
    assert values(["record", "alpaca", "--data", tmp_path, "-s"]) == [
        f"S{day}" for day in reversed(range(2, completion.MANIFESTS_READ + 2))
    ] + list(VENUES["alpaca"].example_symbols)


def test_unreadable_manifests_give_no_symbols(root, monkeypatch):
    (root / session_rel("alpaca", A2) / "session.json").write_text("{not json")
    (root / session_rel("alpaca", A1) / "session.json").write_text(
        json.dumps({"args": {"symbols": ["BIG"]}, "pad": "x" * (1 << 20)}))
    (root / session_rel("hyperliquid", H1) / "session.json").write_text(
        json.dumps({"args": {"symbols": "BTC"}}))
    assert values(["record", "alpaca", "--data", root, "-s"]) == \
        list(VENUES["alpaca"].example_symbols)
    assert values(["record", "hyperliquid", "--data", root, "-s"]) == \
        list(VENUES["hyperliquid"].example_symbols)


@pytest.mark.parametrize("ref, venue", [
    ("last", "alpaca"), ("hyperliquid", "hyperliquid"), (H1, "hyperliquid"),
    ("20261123T09", "hyperliquid"), ("alpaca/20261122", "alpaca"), ("flow", "flow")])
def test_replay_filters_follow_the_sessions_venue(root, ref, venue):
    assert values(["replay", "--data", root, ref, "-c"]) == list(VENUES[venue].channels)
    assert values(["convert", "--data", root, ref, "--channels"]) == \
        list(VENUES[venue].channels)


def test_replay_filters_of_a_session_folder(root, monkeypatch):
    monkeypatch.chdir(root)
    for ref in (root / session_rel("hyperliquid", H1), f"./{session_rel('hyperliquid', H1)}",
                f"flow/{F1}/"):
        expect = "flow" if "flow" in str(ref) else "hyperliquid"
        assert values(["replay", ref, "-c"]) == list(VENUES[expect].channels), ref
    assert values(["replay", root / session_rel("hyperliquid", H1), "-s"]) == ["BTC", "ETH"]


def test_replay_symbols_are_those_of_the_sessions_given(root):
    assert values(["replay", "--data", root, "last", "-s"]) == ["FAKEPACA", "AAPL"]
    assert values(["replay", "--data", root, "alpaca", "-s"]) == ["FAKEPACA", "AAPL", "MSFT"]
    assert values(["replay", "--data", root, A1, H1, "-s"]) == ["AAPL", "MSFT", "BTC", "ETH"]
    assert values(["replay", "--data", root, A1, "-s", "AAPL", "-s"], "AAPL,") == ["AAPL,MSFT"]
    assert values(["replay", "--data", root, "nosuch", "-s"]) == []


def test_replay_filters_with_no_session_yet_use_the_whole_root(root):
    expect = [*VENUES["alpaca"].channels, *VENUES["hyperliquid"].channels,
              *VENUES["flow"].channels]
    assert values(["replay", "--data", root, "-c"]) == list(dict.fromkeys(expect))
    assert values(["replay", "--data", root, "-s"]) == ["FAKEPACA", "AAPL", "BTC", "ETH",
                                                         "MSFT"]


# -- venues, choices, paths --------------------------------------------------------------------

def test_venue_folders(root):
    assert values(["ls", "--data", root]) == ["alpaca", "flow", "hyperliquid"]
    assert values(["prune", "--data", root, "--older-than", "1d", "--venue"], "h") == \
        ["hyperliquid"]
    assert values(["import", "x.jsonl", "--data", root, "--venue"]) == sorted(VENUES)
    (root / "myhost" / A1).mkdir(parents=True)
    assert values(["import", "x.jsonl", "--data", root, "--venue"], "m") == ["myhost"]


def test_simulators(root):
    from wsrec.sim import SIMULATORS
    assert values(["sim"]) == sorted(SIMULATORS)
    assert values(["sim"], "h") == ["hyperliquid"]


def test_normalized_tables_of_the_sessions_venue(root):
    from wsrec.venues.tables import tables
    assert values(["replay", "--data", root, "hyperliquid", "--normalize"]) == \
        list(tables(VENUES["hyperliquid"]))
    assert values(["convert", "--data", root, f"flow/{F1}", "--normalize"], "b") == \
        [t for t in tables(VENUES["flow"]) if t.startswith("b")]
    assert values(["replay", "--data", root, "nosuch", "--normalize"]) == []


@pytest.mark.parametrize("args, incomplete, expect", [
    (["record"], "h", ["hyperliquid"]),
    (["venues"], "v", ["vega"]),
    (["replay", "last", "--format"], "", ["raw", "envelope"]),
    (["replay", "last", "--direction"], "e", ["event"]),
    (["convert", "last", "--format"], "js", ["jsonl", "jsonl.zst"]),
    (["import", "x", "--format"], "", ["jsonl", "lines", "har"]),
    (["record", "alpaca", "--rotate"], "", ["1h", "1d", "never"]),
    (["--log-format"], "", ["text", "json"]),
    (["config"], "", ["check"]),
])
def test_choices_lazy_or_not(root, args, incomplete, expect):
    assert values(args, incomplete) == expect


@pytest.mark.parametrize("args, kind", [
    (["info", "--data"], "dir"), (["record", "alpaca", "--spool"], "dir"),
    (["repair", "--spool"], "dir"), (["record", "--config"], "file"),
    (["convert", "last", "-o"], "file"), (["convert", "last", "--output"], "file"),
    (["import"], "file"), (["config", "check"], "file")])
def test_paths_are_left_to_the_shell(args, kind):
    assert complete(args, "some/pa") == [(kind, "some/pa")]


def test_bash_completion_end_to_end(root):
    """What the shell script gets: ``type,value`` lines."""
    env = {"_WSREC_COMPLETE": "bash_complete", "COMP_WORDS": f"wsrec replay {A2} -s A",
           "COMP_CWORD": "4", "WSREC_DATA": str(root)}
    result = CliRunner().invoke(cli, [], env=env, prog_name="wsrec")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["plain,AAPL"]
    env.update(COMP_WORDS=f"wsrec info --data {root} 20261123", COMP_CWORD="4")
    result = CliRunner().invoke(cli, [], env=env, prog_name="wsrec")
    assert result.output.splitlines() == [f"plain,{A2}", f"plain,{H1}"]


def test_env_data_matches_the_store():
    from wsrec.store.location import DEFAULT_DATA, ENV_DATA
    assert (completion.ENV_DATA, completion.DEFAULT_DATA) == (ENV_DATA, DEFAULT_DATA)
