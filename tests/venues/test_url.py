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


@pytest.mark.parametrize("url,problem", [
    ("ws://[::1/", "unbalanced '['"),
    ("ws://h.test:99999/", "invalid port 99999"),
    ("ws://h.test:0/", "invalid port 0"),
    ("wss://h.test/x#frag", "no #fragment"),
    ("ws:///nohost", "no host name"),
])
def test_invalid_urls_are_usage_errors(url, problem):
    with pytest.raises(UsageError, match="invalid URL .*" + problem.replace("[", r"\[")):
        get_venue("url").streams(Request(url=url))


def test_messages_never_show_the_urls_secrets():
    for url in ("http://bob:hunter22@x.test/?token=tok-123",
                "ws://bob:hunter22@x:70000/?token=tok-123"):
        with pytest.raises(UsageError) as info:
            get_venue("url").streams(Request(url=url))
        text = str(info.value)
        assert "hunter22" not in text and "tok-123" not in text and "***@x" in text


def test_default_name_of_a_bad_url():
    assert Url.default_name("ws://[::1/") == "url"
    assert Url.default_name("ws://user:pw@example.test/") == "example.test"


def test_endpoint_overrides_that_are_not_urls_reach_the_recorder_unchanged():
    from wsrec.venues.base import endpoint
    assert endpoint("ws://[::1/", "wss://default/ws", "ws") == "ws://[::1/"
    assert endpoint("ws://127.0.0.1:1", "wss://default/ws", "ws") == "ws://127.0.0.1:1/ws"
