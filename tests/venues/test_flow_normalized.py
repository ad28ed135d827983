"""Flow's normalized tables, exchange times and height checks, from literal frames in the
access node's shapes (venue-docs/flow.md, PROTOCOLS.md section 4, and the response models
of flow-go's ``engine/access/rest/websockets``)."""

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from wsrec.venues import get_venue
from wsrec.venues.flow import event_contract, event_data
from wsrec.venues.normalize import Normalizer, schema
from normalized_frames import frames_batch

T0 = 1_735_812_000_000_000_000
ID = "7d2f9b3e4a1c0b5f" * 4

DIGEST = (b'{"subscription_id":"s0-block_digests","topic":"block_digests","payload":{'
          b'"block_id":"' + ID.encode() + b'","height":"123456789",'
          b'"timestamp":"2025-01-02T10:00:00.123456789Z"}}')
# the docs' example: the digest's id as ``id``
DIGEST_DOCS = (b'{"subscription_id":"some-id-42","topic":"block_digests","payload":{'
               b'"id":"0x1234","height":"123456790","timestamp":"2025-01-02T10:00:01Z"}}')
HEADER = (b'{"subscription_id":"s1-block_headers","topic":"block_headers","payload":{'
          b'"id":"' + ID.encode() + b'","parent_id":"' + b"a" * 64 + b'","height":"123456789",'
          b'"timestamp":"2025-01-02T10:00:00.123456789Z","parent_voter_signature":"c0ffee"}}')
BLOCK = (b'{"subscription_id":"s2-blocks","topic":"blocks","payload":{"header":{"id":"'
         + ID.encode() + b'","parent_id":"' + b"a" * 64 + b'","height":"123456789",'
         b'"timestamp":"2025-01-02T10:00:00.123456789Z","parent_voter_signature":"c0ffee"},'
         b'"payload":{"collection_guarantees":[],"block_seals":[]},"_expandable":{},'
         b'"block_status":"BLOCK_SEALED"}}')
# JSON-CDC of FlowToken's events, as the access node sends them: base64
WITHDRAWN = ('{"value":{"id":"A.1654653399040a61.FlowToken.TokensWithdrawn","fields":[{"value":'
             '{"value":"0.00100000","type":"UFix64"},"name":"amount"},{"value":{"value":{"value":'
             '"0x5068e27f275c546c","type":"Address"},"type":"Optional"},"name":"from"}]},'
             '"type":"Event"}')
DEPOSITED = ('{"value":{"id":"A.1654653399040a61.FlowToken.TokensDeposited","fields":[{"value":'
             '{"value":"0.00100000","type":"UFix64"},"name":"amount"},{"value":{"value":{"value":'
             '"0x5068e27f275c546c","type":"Address"},"type":"Optional"},"name":"to"}]},'
             '"type":"Event"}')
CREATED = ('{"value":{"id":"flow.AccountCreated","fields":[{"value":{"value":"0x5068e27f275c546c",'
           '"type":"Address"},"name":"address"}]},"type":"Event"}')
EVENTS = (
    b'{"subscription_id":"s3-events","topic":"events","payload":{"block_id":"' + ID.encode()
    + b'","block_height":"123456789","block_timestamp":"2025-01-02T10:00:00.123456789Z",'
    b'"events":[{"type":"A.1654653399040a61.FlowToken.TokensWithdrawn","transaction_id":"aa",'
    b'"transaction_index":"0","event_index":"0","payload":"eyJ2YWx1ZSI6eyJpZCI6IkEuMTY1NDY1'
    b'MzM5OTA0MGE2MS5GbG93VG9rZW4uVG9rZW5zV2l0aGRyYXduIiwiZmllbGRzIjpbeyJ2YWx1ZSI6eyJ2YWx1ZSI6'
    b'IjAuMDAxMDAwMDAiLCJ0eXBlIjoiVUZpeDY0In0sIm5hbWUiOiJhbW91bnQifSx7InZhbHVlIjp7InZhbHVlIjp7'
    b'InZhbHVlIjoiMHg1MDY4ZTI3ZjI3NWM1NDZjIiwidHlwZSI6IkFkZHJlc3MifSwidHlwZSI6Ik9wdGlvbmFsIn0s'
    b'Im5hbWUiOiJmcm9tIn1dfSwidHlwZSI6IkV2ZW50In0K"},'
    b'{"type":"A.1654653399040a61.FlowToken.TokensDeposited","transaction_id":"aa",'
    b'"transaction_index":"0","event_index":"1","payload":"eyJ2YWx1ZSI6eyJpZCI6IkEuMTY1NDY1Mz'
    b'M5OTA0MGE2MS5GbG93VG9rZW4uVG9rZW5zRGVwb3NpdGVkIiwiZmllbGRzIjpbeyJ2YWx1ZSI6eyJ2YWx1ZSI6Ij'
    b'AuMDAxMDAwMDAiLCJ0eXBlIjoiVUZpeDY0In0sIm5hbWUiOiJhbW91bnQifSx7InZhbHVlIjp7InZhbHVlIjp7In'
    b'ZhbHVlIjoiMHg1MDY4ZTI3ZjI3NWM1NDZjIiwidHlwZSI6IkFkZHJlc3MifSwidHlwZSI6Ik9wdGlvbmFsIn0sIm'
    b'5hbWUiOiJ0byJ9XX0sInR5cGUiOiJFdmVudCJ9Cg=="},'
    b'{"type":"flow.AccountCreated","transaction_id":"bb","transaction_index":"1",'
    b'"event_index":"0","payload":"eyJ2YWx1ZSI6eyJpZCI6ImZsb3cuQWNjb3VudENyZWF0ZWQiLCJmaWVsZHM'
    b'iOlt7InZhbHVlIjp7InZhbHVlIjoiMHg1MDY4ZTI3ZjI3NWM1NDZjIiwidHlwZSI6IkFkZHJlc3MifSwibmFtZSI'
    b'6ImFkZHJlc3MifV19LCJ0eXBlIjoiRXZlbnQifQo="}],"message_index":4}}')
# a heartbeat: no events (``events`` is left out when empty)
HEARTBEAT = (b'{"subscription_id":"s3-events","topic":"events","payload":{"block_id":"'
             + ID.encode() + b'","block_height":"123456800","block_timestamp":'
             b'"2025-01-02T10:00:11Z","message_index":5}}')
ACCOUNT_STATUSES = (b'{"subscription_id":"s4-account_statuses","topic":"account_statuses",'
                    b'"payload":{"block_id":"' + ID.encode() + b'","height":"123456789",'
                    b'"account_events":{},"message_index":0}}')


@pytest.fixture
def flow():
    return get_venue("flow")


def rows(venue, table, payload):
    return list(venue.normalize(table, json.loads(payload), None, {}))


def test_exchange_times(flow):
    payloads = [DIGEST, DIGEST_DOCS, HEADER, BLOCK, EVENTS, HEARTBEAT, ACCOUNT_STATUSES,
                b'{"subscription_id":"s0","action":"subscribe"}']
    got = flow.exch_ts(pa.array(payloads, pa.binary()), pa.array(["text"] * len(payloads)))
    at = 1_735_812_000_000_000_000
    assert got.cast(pa.int64()).to_pylist() == [
        at + 123456789, at + 1_000_000_000, at + 123456789, at + 123456789, at + 123456789,
        at + 11_000_000_000, None, None]


def test_blocks_from_the_three_block_topics(flow):
    for frame in (DIGEST, HEADER, BLOCK):
        assert rows(flow, "blocks", frame) == [(None, 123456789, ID)]
    assert rows(flow, "blocks", DIGEST_DOCS) == [(None, 123456790, "0x1234")]


def test_actions_one_row_per_event_with_its_decoded_payload(flow):
    assert rows(flow, "actions", EVENTS) == [
        (None, 123456789, ID, "aa", "A.1654653399040a61.FlowToken.TokensWithdrawn",
         "A.1654653399040a61.FlowToken", WITHDRAWN),
        (None, 123456789, ID, "aa", "A.1654653399040a61.FlowToken.TokensDeposited",
         "A.1654653399040a61.FlowToken", DEPOSITED),
        (None, 123456789, ID, "bb", "flow.AccountCreated", "flow", CREATED)]
    assert rows(flow, "actions", HEARTBEAT) == []
    # a payload sent as JSON-CDC rather than base64 is kept as it is
    base64_payload = EVENTS[EVENTS.index(b'"eyJ'):EVENTS.index(b'"},') + 1]
    cdc = EVENTS.replace(base64_payload, CREATED.encode())
    assert rows(flow, "actions", cdc)[0][-1] == CREATED


def test_event_contracts():
    assert event_contract("A.1654653399040a61.FlowToken.TokensDeposited") == \
        "A.1654653399040a61.FlowToken"
    assert event_contract("A.e467b9dd11fa00df.EVM.TransactionExecuted") == \
        "A.e467b9dd11fa00df.EVM"
    assert event_contract("flow.AccountCreated") == "flow"
    assert event_contract("Event") is None and event_contract("A.1.Token") is None
    assert event_data("") is None and event_data(None) is None


@pytest.mark.parametrize("table,payload", [
    ("blocks", b'{"subscription_id":"a","topic":"block_digests","payload":{"block_id":"x"}}'),
    ("blocks", b'{"subscription_id":"a","topic":"blocks","payload":{"id":"x","height":"1"}}'),
    ("blocks", b'{"subscription_id":"a","topic":"block_digests","payload":{"block_id":"x",'
               b'"height":"one"}}'),
    ("actions", b'{"subscription_id":"a","topic":"events","payload":{"block_id":"x",'
                b'"block_height":"1","events":[{"type":"flow.AccountCreated",'
                b'"transaction_id":"t","payload":"not base64!"}]}}'),
    ("actions", b'{"subscription_id":"a","topic":"events","payload":{"block_id":"x",'
                b'"block_height":"1","events":[{"type":"flow.AccountCreated",'
                b'"transaction_id":"t","payload":"aGVsbG8="}]}}'),       # "hello": no JSON
    ("actions", b'{"subscription_id":"a","action":"subscribe"}'),
])
def test_frames_that_cannot_be_mapped_raise(flow, table, payload):
    with pytest.raises((KeyError, ValueError, TypeError)):
        rows(flow, table, payload)


def digest(height, sid="s0"):
    return (b'{"subscription_id":"%s","topic":"block_digests","payload":{"block_id":"ab",'
            b'"height":"%d","timestamp":"2025-01-02T10:00:00Z"}}' % (sid.encode(), height))


def events(height, index, sid="s3"):
    return (b'{"subscription_id":"%s","topic":"events","payload":{"block_id":"ab",'
            b'"block_height":"%d","block_timestamp":"2025-01-02T10:00:00Z",'
            b'"message_index":%d}}' % (sid.encode(), height, index))


def gaps(venue, payloads):
    state: dict = {}
    return [gap for p in payloads for gap in venue.check_sequence(json.loads(p), None, state)]


def test_block_heights_skipped_or_repeated():
    flow = get_venue("flow")
    assert gaps(flow, [digest(h) for h in range(100, 110)]) == []
    assert gaps(flow, [digest(100), digest(101), digest(105), digest(106)]) == [
        ("subscription s0 (block_digests): height 105 after 101, expected 102", 3)]
    assert gaps(flow, [digest(100), digest(101), digest(102), digest(100), digest(101),
                       digest(102), digest(103)]) == [
        ("subscription s0 (block_digests): height 100 again after 102", 3)]
    # subscriptions are followed apart, and blocks topics read their header
    assert gaps(flow, [digest(100), digest(7, "s1"), digest(101), digest(8, "s1")]) == []
    assert gaps(flow, [BLOCK, BLOCK.replace(b'"123456789"', b'"123456791"')]) == [
        ("subscription s2-blocks (blocks): height 123456791 after 123456789, "
         "expected 123456790", 1)]


def test_events_follow_the_message_index():
    flow = get_venue("flow")
    # heights skip blocks without events: no gap while message_index counts up by one
    assert gaps(flow, [events(100, 0), events(103, 1), events(110, 2)]) == []
    assert gaps(flow, [events(100, 0), events(103, 1), events(120, 4)]) == [
        ("subscription s3 (events): message_index 4 after 1, expected 2", 2)]
    assert gaps(flow, [events(100, 0), events(103, 1), events(103, 1)]) == [
        ("subscription s3 (events): message_index 1 again after 1", 1)]
    assert gaps(flow, [events(100, 0), events(99, 1)]) == [
        ("subscription s3 (events): height 99 after 100, expected a higher one", 2)]
    assert gaps(flow, [EVENTS, HEARTBEAT, ACCOUNT_STATUSES]) == []
    # replies and errors are not checked
    assert gaps(flow, [b'{"subscription_id":"s0","action":"subscribe"}',
                       b'{"subscription_id":"s0","error":{"code":500,"message":"x"}}']) == []


def test_normalizer_end_to_end(flow):
    batch = frames_batch(flow, [
        ("subscribe", b'{"subscription_id":"s3-events","action":"subscribe"}'),
        ("events", EVENTS), ("block_digests", DIGEST), ("events", HEARTBEAT),
        ("events", b'{"subscription_id":"s3-events","topic":"events","payload":{}}')])
    n = Normalizer(flow, "actions")
    out = n.feed(batch)
    assert out.schema == schema("actions") and out.num_rows == 3
    assert (n.mapped, n.unmapped, n.unmapped_seqs) == (2, 1, [5])
    assert out.column("exch_ts").cast(pa.int64()).to_pylist() == [T0 + 123456789] * 3
    assert out.column("account").to_pylist() == ["A.1654653399040a61.FlowToken"] * 2 + ["flow"]
    assert out.column("seq").to_pylist() == [2, 2, 2]

    n = Normalizer(flow, "blocks")
    out = n.feed(batch)
    assert (n.mapped, n.unmapped) == (1, 0)
    assert out.select(["height", "block_id", "seq"]).to_pylist() == [
        {"height": 123456789, "block_id": ID, "seq": 3}]


@pytest.mark.timeout(60)
def test_recorded_from_the_simulator_normalizes_completely(data):
    from conftest import record_from_sim
    from wsrec.record.recorder import RecordOptions

    _, _, session = record_from_sim("flow", data,
                                    channels=["block_digests", "block_headers", "blocks",
                                              "events"],
                                    options=RecordOptions(duration=0.6))
    flow = get_venue("flow")
    batches = list(session.batches(columns=Normalizer(flow, "blocks").columns))
    for table in ("blocks", "actions"):
        n = Normalizer(flow, table)
        assert sum(n.feed(b).num_rows for b in batches) > 0 and n.unmapped == 0, table
    data_frames = [b.filter(pc.is_in(b.column("channel"), pa.array(flow.sequenced)))
                   for b in batches]
    assert all(b.column("exch_ts").null_count == 0 for b in data_frames if b.num_rows)
    states: dict = {}
    for b in data_frames:
        for payload, conn in zip(b.column("payload").to_pylist(), b.column("conn").to_pylist()):
            assert list(flow.check_sequence(json.loads(payload), None,
                                            states.setdefault(conn, {}))) == []
