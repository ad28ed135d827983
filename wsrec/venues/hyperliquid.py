"""Hyperliquid: one subscribe message per subscription object, acks, ping/pong.

Protocol (venue-docs/hyperliquid.md, PROTOCOLS.md section 2): the client sends
``{"method":"subscribe","subscription":{"type":"trades","coin":"SOL"}}`` per
subscription and gets ``{"channel":"subscriptionResponse",...}``; data frames are
``{"channel":<name>,"data":...}``. The server closes a connection it has sent nothing
to for 60 s, so the client sends ``{"method":"ping"}`` (answered by
``{"channel":"pong"}``). Older servers greet with a non-JSON text line.
"""

from __future__ import annotations

import json
import re

from wsrec.venues.base import NONE, Request, Step, Stream, UsageError, Venue, endpoint

__all__ = ["Hyperliquid", "HyperliquidStream", "SUBSCRIPTIONS"]

MAINNET = "wss://api.hyperliquid.xyz/ws"
TESTNET = "wss://api.hyperliquid-testnet.xyz/ws"

_USER = ("notification", "webData2", "orderUpdates", "userEvents", "userFills",
         "userFundings", "userNonFundingLedgerUpdates", "userTwapSliceFills",
         "userTwapHistory")
#: subscription type -> (arguments it takes, data channel)
SUBSCRIPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "allMids": (("dex",), "allMids"),
    "l2Book": (("coin", "nSigFigs", "mantissa"), "l2Book"),
    "trades": (("coin",), "trades"),
    "bbo": (("coin",), "bbo"),
    "candle": (("coin", "interval"), "candle"),
    "activeAssetCtx": (("coin",), "activeAssetCtx"),
    "activeAssetData": (("user", "coin"), "activeAssetData"),
    **{t: (("user",), "user" if t == "userEvents" else t) for t in _USER},
}
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d",
             "1w", "1M")
_NUMERIC = ("nSigFigs", "mantissa")

_CHANNEL = re.compile(rb'^\s*\{\s*"channel"\s*:\s*"([^"]+)"')
_COIN = re.compile(rb'"coin":"([^"]+)"')
_CANDLE = re.compile(rb'"s":"([^"]+)"')


class HyperliquidStream(Stream):
    def __init__(self, url: str, subscriptions: list[dict]):
        self.url = url
        self.subscriptions = subscriptions
        self.pending = 0

    def reset(self) -> None:
        self.pending = len(self.subscriptions)  # no resume: subscribe again

    def opening(self) -> list[bytes]:
        self.pending = len(self.subscriptions)
        return [json.dumps({"method": "subscribe", "subscription": s},
                           separators=(",", ":")).encode() for s in self.subscriptions]

    def heartbeat(self) -> bytes:
        return b'{"method":"ping"}'

    def receive(self, payload: bytes, text: bool):
        m = _CHANNEL.match(payload)
        if m is None:
            return NONE, NONE, None  # e.g. "Websocket connection established."
        channel = m.group(1).decode()
        if channel == "subscriptionResponse":
            self.pending -= 1
            return (channel,), NONE, Step(ready=True) if self.pending == 0 else None
        if channel == "error":
            return (channel,), NONE, self._error(payload)
        if channel in ("pong", "post"):
            return (channel,), NONE, None
        coins = _COIN.findall(payload) or (_CANDLE.findall(payload)
                                           if channel == "candle" else [])
        return (channel,), tuple(dict.fromkeys(c.decode() for c in coins)), None

    def _error(self, payload: bytes) -> Step | None:
        try:
            text = str(json.loads(payload).get("data", ""))
        except ValueError:
            text = payload.decode(errors="replace")
        if text.startswith("Already subscribed"):
            self.pending -= 1
            return Step(ready=True) if self.pending == 0 else None
        if "subscri" in text.lower() or "invalid" in text.lower():
            return Step(fatal=f"hyperliquid rejected a subscription: {text[:200]}")
        return None


class Hyperliquid(Venue):
    name = "hyperliquid"
    title = "Hyperliquid exchange WebSocket API"
    symbols = "coins (BTC, ETH) for the coin subscriptions (trades, l2Book, bbo, candle, ...)"
    endpoints = {"mainnet": MAINNET, "testnet": TESTNET}
    channels = {t: f"{t} subscription (args: {', '.join(a)})"
                for t, (a, _) in SUBSCRIPTIONS.items()}
    default_channels = ["trades", "l2Book"]
    params = {"user": "address for user subscriptions",
              "interval": f"candle interval ({', '.join(INTERVALS)}; default 1m)",
              "nSigFigs": "l2Book significant figures", "mantissa": "l2Book mantissa",
              "dex": "allMids dex", "testnet": "true for the testnet endpoint"}
    watchdog = 90.0      # pongs arrive every 50 s even on quiet subscriptions
    heartbeat = 50.0     # {"method":"ping"} well inside the 60 s idle close
    send_limit = (2000, 60.0)
    connect_limit = (30, 60.0)
    max_subscriptions = 1000

    def streams(self, request: Request) -> list[Stream]:
        self.check_params(request)
        channels = self.check_channels(request)
        subs = []
        for ctype in channels:
            args, _ = SUBSCRIPTIONS[ctype]
            base = {"type": ctype}
            for a in args:
                if a in ("coin",):
                    continue
                value = request.param(a)
                if a == "interval" and value is None:
                    value = "1m"
                if a == "user" and value is None:
                    raise UsageError(f"hyperliquid: {ctype} needs --param user=0x...")
                if value is not None:
                    if a == "interval" and value not in INTERVALS:
                        raise UsageError(f"hyperliquid: unknown interval {value!r}")
                    base[a] = int(value) if a in _NUMERIC else value
            if "coin" in args:
                if not request.symbols:
                    raise UsageError(f"hyperliquid: {ctype} needs coins (--symbols BTC,ETH)")
                subs.extend({**base, "coin": coin} for coin in request.symbols)
            else:
                subs.append(base)
        if len(subs) > self.max_subscriptions:
            raise UsageError(f"hyperliquid: {len(subs)} subscriptions exceed the limit of "
                             f"{self.max_subscriptions} per IP")
        url = endpoint(request.url, TESTNET if request.flag("testnet") else MAINNET, "ws")
        return [HyperliquidStream(url, subs)]
