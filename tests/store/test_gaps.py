"""wsrec verify --deep: venue-level gaps, named by stream, connection, seq and size."""

import json

from click.testing import CliRunner

import wsrec
from wsrec.cli import cli
from wsrec.store.gaps import describe_gap, venue_gaps

M = "2839d9b2329c9e70ae8fdf7e5c1e0f0c4af8a3e9b5fd1c8d1d9e5d2e1a7b6c5d"


def update(seq, prev):
    return (b'{"result":{"update":[{"marketId":"%s","buy":[{"price":"1","volume":"1"}],'
            b'"sequenceNumber":"%d","previousSequenceNumber":"%d"}]}}' % (M.encode(), seq, prev))


def vega_session(data, conns):
    """Depth updates on ``conns``: a list of payload lists, one per connection."""
    with wsrec.SessionWriter("vega", data=data) as w:
        for conn, payloads in enumerate(conns):
            w.event("open", conn=conn, stream="markets/depth/updates", url="wss://x/")
            for p in payloads:
                w.append(p, kind="text", conn=conn, stream="markets/depth/updates",
                         channels=("markets/depth/updates",), symbols=(M,))
            w.event("close", conn=conn, stream="markets/depth/updates", code=1000)
    return wsrec.open_session(w.folder)


def test_a_broken_chain_is_found_and_named(data):
    s = vega_session(data, [[update(103, 90), update(105, 103), update(110, 107)]])
    gaps, undecodable = venue_gaps(s)
    assert undecodable == 0
    assert [(g["stream"], g["conn"], g["seq"], g["size"]) for g in gaps] == [
        ("markets/depth/updates", 0, 3, 1)]
    assert "previousSequenceNumber 107, last sequenceNumber 105" in gaps[0]["what"]
    assert describe_gap(gaps[0]).startswith("gap in stream markets/depth/updates (conn 0) "
                                            "at seq 3")


def test_each_connection_is_its_own_chain(data):
    # a reconnect starts again: the second connection's first update is not a gap
    s = vega_session(data, [[update(103, 90), update(105, 103)], [update(300, 290)]])
    assert venue_gaps(s) == ([], 0)


def test_verify_deep_cli(data):
    s = vega_session(data, [[update(103, 90), update(110, 107), b"not json"]])
    runner = CliRunner()
    plain = runner.invoke(cli, ["verify", str(s.path)])
    assert plain.exit_code == 0, plain.output
    r = runner.invoke(cli, ["verify", str(s.path), "--deep"])
    assert r.exit_code == 1
    assert "gap in stream markets/depth/updates (conn 0) at seq 2" in r.output
    assert "1 numbered frame(s) could not be decoded" in r.output
    r = runner.invoke(cli, ["verify", str(s.path), "--deep", "--json"])
    report = json.loads(r.stdout)
    assert r.exit_code == 1 and not report["ok"] and report["undecodable"] == 1
    assert [g["seq"] for g in report["gaps"]] == [2]


def test_sound_chain_and_venues_without_numbering(data):
    s = vega_session(data, [[update(103, 90), update(105, 103)]])
    r = CliRunner().invoke(cli, ["verify", str(s.path), "--deep"])
    assert r.exit_code == 0 and "no venue-level gaps" in r.output
    with wsrec.SessionWriter("alpaca", data=data) as w:
        w.append(b'[{"T":"t"}]', kind="text", channels=("trades",))
    assert venue_gaps(wsrec.open_session(w.folder)) == ([], 0)
