"""ccxt's own `binance` class, unmodified, drives the exchange through its
Binance-compatible surface: only options and URLs change, as the README
shows a bot's author."""

import ccxt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange_server import Server


def client(server, key, secret):
    ex = ccxt.binance({
        "apiKey": key,
        "secret": secret,
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot",
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    })
    # Sandbox mode first, so nothing can reach the real exchange's other
    # APIs; then every spot URL points here.
    ex.set_sandbox_mode(True)
    for api in ("public", "private"):
        ex.urls["api"][api] = server.url + "/compat/binance/api/v3"
    return ex


@pytest.fixture(scope="module")
def server():
    with Server() as s:
        yield s


def test_ccxt_loads_markets_and_reads_the_public_data(server):
    ex = client(server, None, None)
    markets = ex.load_markets()
    btc = markets["BTC/USD"]
    assert btc["id"] == "BTCUSD" and btc["spot"] and btc["active"]
    assert btc["precision"]["price"] == 0.01
    assert ex.fetch_time() > 0
    book = ex.fetch_order_book("BTC/USD")
    assert book["bids"] == [] and book["asks"] == [] and book["nonce"] >= 0
    assert ex.fetch_trades("BTC/USD") == []
    ticker = ex.fetch_ticker("BTC/USD")
    assert ticker["symbol"] == "BTC/USD"


def test_ccxt_trades_with_an_hmac_key(server):
    maker = client(server, *server.api_key(server.trader("maker")))
    taker = client(server, *server.api_key(server.trader("taker")))
    balance = maker.fetch_balance()
    assert balance["USD"]["free"] > 0 and balance["USD"]["used"] == 0

    ask = maker.create_order("BTC/USD", "limit", "sell", 0.5, 30000)
    assert ask["status"] == "open" and ask["amount"] == 0.5 and ask["clientOrderId"]
    held = maker.fetch_balance()
    assert held["BTC"]["used"] == 0.5

    bought = taker.create_order("BTC/USD", "market", "buy", 0.2)
    assert bought["status"] == "closed" and bought["filled"] == 0.2
    assert bought["trades"][0]["price"] == 30000

    fetched = maker.fetch_order(ask["id"], "BTC/USD")
    assert fetched["filled"] == 0.2 and fetched["remaining"] == 0.3
    assert fetched["status"] == "open"
    assert [o["id"] for o in maker.fetch_open_orders("BTC/USD")] == [ask["id"]]
    mine = taker.fetch_my_trades("BTC/USD")
    assert [(t["side"], t["amount"], t["price"], t["takerOrMaker"]) for t in mine] == [
        ("buy", 0.2, 30000, "taker")]
    trades = maker.fetch_trades("BTC/USD")
    assert [(t["price"], t["amount"], t["side"]) for t in trades] == [(30000, 0.2, "buy")]
    book = maker.fetch_order_book("BTC/USD")
    assert book["asks"] == [[30000, 0.3]]
    candles = maker.fetch_ohlcv("BTC/USD", "1m")
    assert candles[-1][1:] == [30000, 30000, 30000, 30000, 0.2]

    cancelled = maker.cancel_order(ask["id"], "BTC/USD")
    assert cancelled["status"] == "canceled"
    maker.create_order("BTC/USD", "limit", "sell", 0.1, 31000)
    maker.create_order("BTC/USD", "limit", "sell", 0.1, 32000)
    gone = maker.cancel_all_orders("BTC/USD")
    assert sorted(o["price"] for o in gone) == [31000, 32000]
    assert maker.fetch_open_orders("BTC/USD") == []
    history = maker.fetch_orders("BTC/USD")
    assert [o["status"] for o in history] == ["canceled"] * 3

    # Binance's refusals come back as ccxt's exceptions.
    with pytest.raises(ccxt.InsufficientFunds):
        taker.create_order("BTC/USD", "limit", "buy", 100, 30000)
    with pytest.raises(ccxt.OrderNotFound):
        maker.cancel_order("987654", "BTC/USD")
    with pytest.raises(ccxt.OrderNotFound):
        maker.fetch_order("987654", "BTC/USD")
    maker.create_order("BTC/USD", "limit", "sell", 0.1, 30500)
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        taker.create_order("BTC/USD", "limit", "buy", 0.1, 30500, {"postOnly": True})
    assert maker.cancel_all_orders("BTC/USD")[0]["price"] == 30500


def test_ccxt_edits_an_order_by_cancel_replace(server):
    ex = client(server, *server.api_key(server.trader("editor")))
    order = ex.create_order("BTC/USD", "limit", "buy", 0.1, 20000)
    edited = ex.edit_order(order["id"], "BTC/USD", "limit", "buy", 0.2, 21000)
    assert edited["id"] != order["id"] and edited["price"] == 21000 and edited["amount"] == 0.2
    assert ex.fetch_order(order["id"], "BTC/USD")["status"] == "canceled"
    assert [o["id"] for o in ex.fetch_open_orders("BTC/USD")] == [edited["id"]]


def test_ccxt_signs_with_an_ed25519_key_and_bad_keys_are_refused(server):
    web = server.trader("edwards")
    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    key, secret = server.api_key(web, public_key=public_pem)
    assert secret is None
    ex = client(server, key, private_pem)
    placed = ex.create_order("BTC/USD", "limit", "buy", 0.1, 20000)
    assert placed["status"] == "open"

    wrong = client(server, key, "not the secret")
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_balance()
    reader_key, reader_secret = server.api_key(web, scopes=("read",))
    # (A fresh client: after a success ccxt reads -2015 as a temporary ban.)
    with pytest.raises(ccxt.AuthenticationError):
        client(server, reader_key, reader_secret).create_order(
            "BTC/USD", "limit", "buy", 0.1, 20000)
    assert client(server, reader_key, reader_secret).fetch_balance()["USD"]["total"] > 0
    assert len(ex.fetch_open_orders("BTC/USD")) == 1
