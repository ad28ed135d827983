"""dfuse's normalized tables, exchange times and progress checks, from literal frames of
dfuse's documentation (the ActionTrace, HeadInfo, progress, listening and ping examples of
dfuse-io/docs, their elided parts filled in) and PROTOCOLS.md section 5."""

import json

import pyarrow as pa
import pytest

from wsrec.venues import get_venue
from wsrec.venues.normalize import Normalizer, schema
from normalized_frames import frames_batch

T0 = 1_541_683_419_000_000_000
BLOCK_ID = "018ac229323f3538cfde5c34f9cfcb1b2d80a4062a822c869d9eb9fcff2235db"
TRX = "35030b5bfd05f4f5b5bcae68505bf9f2c227a84c6b406dabebe0d8cd0384cd70"

ACTION_TRACE = (
    b'{"type":"action_trace","req_id":"r0","data":{"block_num":25870889,"block_id":"'
    + BLOCK_ID.encode() + b'","block_time":"2018-11-08T13:23:39.5Z","trx_id":"' + TRX.encode()
    + b'","idx":0,"trace":{"receipt":{"receiver":"eosio.msig","act_digest":"ab",'
    b'"global_sequence":1,"recv_sequence":1,"auth_sequence":[],"code_sequence":1,'
    b'"abi_sequence":1},"act":{"account":"eosio.msig","name":"exec","authorization":[{'
    b'"actor":"eoscanadaaaf","permission":"active"}],"data":{"proposer":"eoscanadaaaf",'
    b'"proposal_name":"goincthirthy","executer":"eoscanadaaaf"},"hex_data":'
    b'"b08c31c94c833055e05bbeae65341d65b08c31c94c833055"},"context_free":false,"elapsed":644,'
    b'"console":"","trx_id":"' + TRX.encode() + b'","block_num":25870889,"block_time":'
    b'"2018-11-08T13:23:39.500","producer_block_id":"' + BLOCK_ID.encode() + b'",'
    b'"account_ram_deltas":[{"account":"eoscanadaaaf","delta":-323}],"except":null,'
    b'"inline_traces":[]},"ramops":[{"op":"deferred_trx_add","action_idx":0,"payer":'
    b'"eoscanadaaaf","delta":354,"usage":4027}]}}')
HEAD_INFO = (b'{"type":"head_info","req_id":"r1","data":{"last_irreversible_block_num":22074884,'
             b'"last_irreversible_block_id":"0150d604868df2ded03bb8e4452cefd0b9c84ae2da31bef6af62'
             b'b2653c8bb5af","head_block_num":22075218,"head_block_id":"0150d7526b680955eaf4c9d9'
             b'4e17ff3f03d25a1dccb714601173c96b80921362","head_block_time":"2018-11-22T21:00:35.5'
             b'Z","head_block_producer":"eosswedenorg"}}')
PROGRESS = (b'{"type":"progress","req_id":"r0","data":{"block_num":29351730,"block_id":'
            b'"01bfdf32469f6f48ca2e5e5c755422c7da0bbc33f1e470c034daffd460a2a58d"}}')
LISTENING = b'{"type":"listening","req_id":"r0","data":{"next_block":26736683}}'
PING = b'{"type":"ping","data":"2018-01-01T00:00:10.526391919Z"}'
TABLE_DELTA = (b'{"type":"table_delta","req_id":"r2","data":{"block_num":123,"step":"new",'
               b'"dbop":{"op":"ins","old":{},"new":{}}}}')


@pytest.fixture
def dfuse():
    return get_venue("dfuse")


def rows(venue, table, payload):
    return list(venue.normalize(table, json.loads(payload), None, {}))


def test_exchange_times(dfuse):
    payloads = [ACTION_TRACE, HEAD_INFO, PING, PROGRESS, LISTENING, TABLE_DELTA,
                b'{"type":"action_trace","data":{"block_time":"2019-05-04T00:00:00.500"}}']
    got = dfuse.exch_ts(pa.array(payloads, pa.binary()), pa.array(["text"] * len(payloads)))
    assert got.cast(pa.int64()).to_pylist() == [
        1541683419500000000, 1542920435500000000, 1514764810526391919, None, None, None,
        1556928000500000000]   # EOSIO's time without a zone is UTC


def test_blocks_from_traces_progress_and_head_info(dfuse):
    assert rows(dfuse, "blocks", ACTION_TRACE) == [(None, 25870889, BLOCK_ID)]
    assert rows(dfuse, "blocks", PROGRESS) == [
        (None, 29351730, "01bfdf32469f6f48ca2e5e5c755422c7da0bbc33f1e470c034daffd460a2a58d")]
    assert rows(dfuse, "blocks", HEAD_INFO) == [
        (None, 22075218, "0150d7526b680955eaf4c9d94e17ff3f03d25a1dccb714601173c96b80921362")]


def test_actions_from_action_traces(dfuse):
    assert rows(dfuse, "actions", ACTION_TRACE) == [
        (None, 25870889, BLOCK_ID, TRX, "exec", "eosio.msig",
         '{"proposer":"eoscanadaaaf","proposal_name":"goincthirthy","executer":"eoscanadaaaf"}')]
    # an action whose ABI dfuse could not decode: its data as a hex string; none at all: null
    hex_only = ACTION_TRACE.replace(b'"data":{"proposer":"eoscanadaaaf","proposal_name":'
                                    b'"goincthirthy","executer":"eoscanadaaaf"},', b'')
    assert rows(dfuse, "actions", hex_only)[0][-1] is None
    hexed = ACTION_TRACE.replace(b'"data":{"proposer":"eoscanadaaaf","proposal_name":'
                                 b'"goincthirthy","executer":"eoscanadaaaf"}', b'"data":"b08c"')
    assert rows(dfuse, "actions", hexed)[0][-1] == '"b08c"'


@pytest.mark.parametrize("table,payload", [
    ("blocks", b'{"type":"progress","req_id":"r0","data":{"block_id":"ab"}}'),
    ("blocks", b'{"type":"head_info","req_id":"r0","data":{"head_block_num":1}}'),
    ("blocks", b'{"type":"action_trace","data":{"block_num":"x1","block_id":"ab"}}'),
    ("actions", b'{"type":"action_trace","data":{"block_num":1,"block_id":"ab","trace":{}}}'),
    ("actions", b'{"type":"action_trace","data":null}'),
    ("actions", b'[]'),
])
def test_frames_that_cannot_be_mapped_raise(dfuse, table, payload):
    with pytest.raises((KeyError, ValueError, TypeError)):
        rows(dfuse, table, payload)


def progress(block, req="r0"):
    return b'{"type":"progress","req_id":"%s","data":{"block_num":%d,"block_id":"ab"}}' % (
        req.encode(), block)


def trace(block, req="r0"):
    return (b'{"type":"action_trace","req_id":"%s","data":{"block_num":%d,"block_id":"ab",'
            b'"trx_id":"cd","idx":0,"trace":{"receipt":{"receiver":"eosio.token"},"act":{'
            b'"account":"eosio.token","name":"transfer"}}}}' % (req.encode(), block))


def gaps(venue, payloads):
    state: dict = {}
    return [gap for p in payloads for gap in venue.check_sequence(json.loads(p), None, state)]


def test_progress_every_n_blocks():
    dfuse = get_venue("dfuse")
    stream = [LISTENING, trace(29351721), progress(29351730), trace(29351733), trace(29351733),
              progress(29351740), progress(29351750), trace(29351751), progress(29351760)]
    assert gaps(dfuse, stream) == []
    assert gaps(dfuse, [progress(29351730), progress(29351740), progress(29351770),
                        progress(29351780)]) == [
        ("req_id r0: progress at block 29351770, expected 29351750 (step 10)", 20)]
    # the step is learnt from the markers' block numbers: even the first jump shows
    assert gaps(dfuse, [progress(29351730), progress(29351750), progress(29351760)]) == [
        ("req_id r0: progress at block 29351750, expected 29351740 (step 10)", 10)]
    assert gaps(dfuse, [progress(101), progress(102), progress(105)]) == [
        ("req_id r0: progress at block 105, expected 103 (step 1)", 2)]
    assert gaps(dfuse, [progress(120), progress(110)]) == [
        ("req_id r0: progress at block 110 after block 120", 10)]
    # requests are followed apart
    assert gaps(dfuse, [progress(130), progress(35, "r1"), progress(140), progress(40, "r1"),
                        progress(150), progress(45, "r1")]) == []


def test_action_traces_going_back():
    dfuse = get_venue("dfuse")
    assert gaps(dfuse, [trace(103), trace(105), trace(103)]) == [
        ("req_id r0: action trace of block 103 after one of block 105", 3)]
    assert gaps(dfuse, [trace(108), progress(110), trace(110)]) == [
        ("req_id r0: action trace of block 110 after progress at block 110", 1)]
    # the request asked again on the connection: its checks start afresh
    assert gaps(dfuse, [trace(108), progress(110), LISTENING, trace(101)]) == []
    assert gaps(dfuse, [PING, HEAD_INFO, TABLE_DELTA, b'{"type":"error","data":{}}']) == []


def test_normalizer_end_to_end(dfuse):
    batch = frames_batch(dfuse, [("listening", LISTENING), ("action_trace", ACTION_TRACE),
                                 ("ping", PING), ("progress", PROGRESS), ("head_info", HEAD_INFO),
                                 ("action_trace", b'{"type":"action_trace","data":{}}')])
    n = Normalizer(dfuse, "blocks")
    out = n.feed(batch)
    assert out.schema == schema("blocks")
    assert (n.mapped, n.unmapped, n.unmapped_seqs) == (3, 1, [6])
    assert out.select(["height", "seq"]).to_pylist() == [
        {"height": 25870889, "seq": 2}, {"height": 29351730, "seq": 4},
        {"height": 22075218, "seq": 5}]
    assert out.column("exch_ts").cast(pa.int64()).to_pylist() == [
        1541683419500000000, None, 1542920435500000000]

    n = Normalizer(dfuse, "actions")
    out = n.feed(batch)
    assert (n.mapped, n.unmapped) == (1, 1)
    assert out.select(["height", "tx_id", "type", "account"]).to_pylist() == [
        {"height": 25870889, "tx_id": TRX, "type": "exec", "account": "eosio.msig"}]


@pytest.mark.timeout(60)
def test_recorded_from_the_simulator_normalizes_completely(data):
    from conftest import record_from_sim
    from wsrec.record.recorder import RecordOptions

    _, _, session = record_from_sim("dfuse", data, channels=["get_action_traces",
                                                             "get_head_info"],
                                    symbols=["eosio.token", "alice"],
                                    options=RecordOptions(duration=0.6))
    dfuse = get_venue("dfuse")
    batches = list(session.batches(columns=Normalizer(dfuse, "blocks").columns))
    for table in ("blocks", "actions"):
        n = Normalizer(dfuse, table)
        assert sum(n.feed(b).num_rows for b in batches) > 0 and n.unmapped == 0, table
    times = [t for b in batches for t, c in zip(b.column("exch_ts").cast(pa.int64()).to_pylist(),
                                                b.column("channel").to_pylist())
             if c in ("action_trace", "head_info")]
    assert times and None not in times
    states: dict = {}
    for b in batches:
        for payload, channel, conn in zip(*(b.column(c).to_pylist()
                                            for c in ("payload", "channel", "conn"))):
            if channel in dfuse.sequenced:
                assert list(dfuse.check_sequence(json.loads(payload), channel,
                                                 states.setdefault(conn, {}))) == []
