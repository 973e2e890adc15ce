"""ccxt.pro's own `binance` class, unmodified, follows the exchange's
market streams: trades, candles, the ticker, and an order book kept from
diffs that must join the REST depth without a gap."""

import asyncio

import ccxt
import ccxt.pro
import pytest

from exchange_server import Server
from test_ccxt_binance import client

OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
}


def pro_client(server):
    ex = ccxt.pro.binance({"options": dict(OPTIONS)})
    ex.set_sandbox_mode(True)
    for api in ("public", "private"):
        ex.urls["api"][api] = server.url + "/compat/binance/api/v3"
    ex.urls["api"]["ws"]["spot"] = server.url.replace("http", "ws") + "/compat/binance/ws"
    return ex


@pytest.fixture(scope="module")
def server():
    with Server() as s:
        yield s


def test_ccxt_pro_watches_trades_candles_ticker_and_a_book_kept_from_diffs(server):
    maker = client(server, *server.api_key(server.trader("streamer")))
    taker = client(server, *server.api_key(server.trader("watcher")))

    async def run():
        ex = pro_client(server)
        try:
            await ex.load_markets()
            # The book: ccxt subscribes, fetches the REST depth, and joins
            # the diffs after it by their update ids.
            book_task = asyncio.create_task(ex.watch_order_book("BTC/USD"))
            trades_task = asyncio.create_task(ex.watch_trades("BTC/USD"))
            candle_task = asyncio.create_task(ex.watch_ohlcv("BTC/USD", "1m"))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(maker.create_order, "BTC/USD", "limit", "sell", 0.5, 30000)
            await asyncio.to_thread(maker.create_order, "BTC/USD", "limit", "sell", 0.25, 30100)
            await asyncio.to_thread(taker.create_order, "BTC/USD", "market", "buy", 0.2)
            trades = await asyncio.wait_for(trades_task, 20)
            assert [(t["price"], t["amount"], t["side"]) for t in trades] == [(30000, 0.2, "buy")]
            candles = await asyncio.wait_for(candle_task, 20)
            assert candles[-1][4] == 30000 and candles[-1][5] == 0.2
            await asyncio.wait_for(book_task, 20)
            # Kept from diffs, the book ends where the REST depth says.
            await asyncio.to_thread(maker.create_order, "BTC/USD", "limit", "buy", 0.1, 29000)
            expected = {"asks": [[30000, 0.3], [30100, 0.25]], "bids": [[29000, 0.1]]}
            for _ in range(50):
                book = await asyncio.wait_for(ex.watch_order_book("BTC/USD"), 20)
                if book["asks"][:2] == expected["asks"] and book["bids"][:1] == expected["bids"]:
                    break
            assert book["asks"][:2] == expected["asks"] and book["bids"][:1] == expected["bids"]
            rest = await asyncio.to_thread(maker.fetch_order_book, "BTC/USD")
            assert book["asks"] == rest["asks"] and book["bids"] == rest["bids"]
            ticker = await asyncio.wait_for(ex.watch_ticker("BTC/USD"), 20)
            assert ticker["last"] == 30000 and ticker["baseVolume"] == 0.2
        finally:
            await ex.close()

    asyncio.run(run())


def test_ccxt_pro_watches_its_own_orders_and_balance(server):
    key, secret = server.api_key(server.trader("follower"))
    rest = client(server, key, secret)
    other = client(server, *server.api_key(server.trader("counterparty")))

    async def run():
        ex = pro_client(server)
        ex.apiKey, ex.secret = key, secret
        ex.urls["api"]["ws"]["ws-api"]["spot"] = (
            server.url.replace("http", "ws") + "/compat/binance/ws-api/v3")
        try:
            await ex.load_markets()
            orders_task = asyncio.create_task(ex.watch_orders("BTC/USD"))
            await asyncio.sleep(1.0)
            # Below every other ask this module's tests leave, above every bid.
            placed = await asyncio.to_thread(rest.create_order, "BTC/USD", "limit", "sell", 0.4, 29500)
            orders = await asyncio.wait_for(orders_task, 20)
            assert [(o["id"], o["status"], o["amount"]) for o in orders] == [(placed["id"], "open", 0.4)]
            # (A watch hears what comes after it is called: each is started
            # before the action it waits for.)
            balance_task = asyncio.create_task(ex.watch_balance())
            trade_task = asyncio.create_task(ex.watch_orders("BTC/USD"))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(other.create_order, "BTC/USD", "limit", "buy", 0.1, 29500)
            orders = await asyncio.wait_for(trade_task, 20)
            assert orders[-1]["id"] == placed["id"] and orders[-1]["filled"] == 0.1
            assert orders[-1]["remaining"] == 0.3 and orders[-1]["status"] == "open"
            balance = await asyncio.wait_for(balance_task, 20)
            mine = await asyncio.to_thread(rest.fetch_balance)
            assert balance["BTC"]["used"] == 0.3 == mine["BTC"]["used"]
            assert balance["USD"]["free"] == mine["USD"]["free"]
            cancel_task = asyncio.create_task(ex.watch_orders("BTC/USD"))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(rest.cancel_order, placed["id"], "BTC/USD")
            orders = await asyncio.wait_for(cancel_task, 20)
            assert orders[-1]["status"] == "canceled"
        finally:
            await ex.close()

    asyncio.run(run())


def test_ccxt_pro_places_and_cancels_orders_over_the_websocket_api(server):
    key, secret = server.api_key(server.trader("sockettrader"))
    rest = client(server, key, secret)

    async def run():
        ex = pro_client(server)
        ex.apiKey, ex.secret = key, secret
        ex.urls["api"]["ws"]["ws-api"]["spot"] = (
            server.url.replace("http", "ws") + "/compat/binance/ws-api/v3")
        try:
            await ex.load_markets()
            # Above every ask this module's other tests leave: it rests.
            placed = await ex.create_order_ws("BTC/USD", "limit", "sell", 0.2, 31500)
            assert placed["status"] == "open" and placed["amount"] == 0.2
            seen = await asyncio.to_thread(rest.fetch_order, placed["id"], "BTC/USD")
            assert seen["status"] == "open" and seen["price"] == 31500
            cancelled = await ex.cancel_order_ws(placed["id"], "BTC/USD")
            assert cancelled["status"] == "canceled"
            assert await asyncio.to_thread(rest.fetch_open_orders, "BTC/USD") == []
        finally:
            await ex.close()

    asyncio.run(run())
