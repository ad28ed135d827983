import pytest

from wsrec.venues import Request, UsageError, get_venue
from wsrec.venues.url import Url


def test_sends_on_every_open():
    [s] = get_venue("url").streams(Request(url="wss://x.test/ws",
                                           params={"send": ['{"op":"sub"}'],
                                                   "header.X-Token": "t"}))
    assert s.opening() == [b'{"op":"sub"}'] and s.opening() == [b'{"op":"sub"}']
    assert s.headers == {"X-Token": "t"}
    assert s.receive(b"anything", True) == ((), (), None)


def test_errors_and_name():
    with pytest.raises(UsageError, match="give the endpoint"):
        get_venue("url").streams(Request())
    with pytest.raises(UsageError, match="not a ws://"):
        get_venue("url").streams(Request(url="http://x"))
    assert Url.default_name("wss://stream.example.test:443/x") == "stream.example.test"
