"""A small market maker for Satoshi Exchange, written against ccxt's own
Binance class: it quotes a bid and an ask around the middle of the book,
and every few seconds cancels and quotes again where the market went.

    scripts/bot.sh                       # against http://127.0.0.1:3000
    scripts/bot.sh --url http://host:3000 --key KEY --secret SECRET

Without a key it signs up an account of its own, claims the faucet and
makes an HMAC key on the /keys page, as a trader would by hand. Nothing in
it is specific to this exchange but the URLs: the same code trades on any
Binance-compatible venue.
"""

import argparse
import re
import secrets
import sys
import time
from decimal import Decimal

import ccxt
import requests


def own_key(url):
    """Signs up a bot account and makes it an API key on the /keys page."""
    web = requests.Session()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    name = "mm-" + secrets.token_hex(4)
    for fn, data in [("sign_up", {"username": name, "password": secrets.token_urlsafe(16)}),
                     ("claim_faucet", {})]:
        r = web.post(f"{url}/api/{fn}", data=data, headers=form)
        r.raise_for_status()
    page = web.post(f"{url}/keys", data={"label": "market maker", "read": "on", "trade": "on"})
    page.raise_for_status()
    key = re.search(r'data-key-id="">([^<]+)<', page.text).group(1)
    secret = re.search(r'data-secret="">([^<]+)<', page.text).group(1)
    print(f"signed up {name} and made an API key for it")
    return key, secret


def exchange(url, key, secret):
    ex = ccxt.binance({
        "apiKey": key,
        "secret": secret,
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot",
        },
    })
    # Sandbox mode first, so no request can reach binance.com; then every
    # spot URL points at this exchange.
    ex.set_sandbox_mode(True)
    for api in ("public", "private"):
        ex.urls["api"][api] = url + "/compat/binance/api/v3"
    return ex


def quote(ex, symbol, spread, size, fallback_mid):
    """Cancels the bot's quotes and places a new bid and ask."""
    market = ex.market(symbol)
    book = ex.fetch_order_book(symbol, 5)
    bid = book["bids"][0][0] if book["bids"] else None
    ask = book["asks"][0][0] if book["asks"] else None
    ticker = ex.fetch_ticker(symbol)
    mid = (bid + ask) / 2 if bid and ask else (ticker["last"] or fallback_mid)
    ex.cancel_all_orders(symbol)
    tick = Decimal(str(market["precision"]["price"]))
    half = Decimal(str(mid)) * Decimal(str(spread)) / 2
    buy = (Decimal(str(mid)) - half).quantize(tick)
    sell = (Decimal(str(mid)) + half).quantize(tick)
    placed = [
        ex.create_order(symbol, "limit", "buy", size, float(buy), {"postOnly": True}),
        ex.create_order(symbol, "limit", "sell", size, float(sell), {"postOnly": True}),
    ]
    balance = ex.fetch_balance()
    base, quote_asset = market["base"], market["quote"]
    print(f"{symbol}: mid {mid}, bid {buy} ask {sell} x {size}; "
          f"{base} {balance[base]['free']} free, {quote_asset} {balance[quote_asset]['free']} free")
    return placed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--key")
    p.add_argument("--secret")
    p.add_argument("--symbol", default="BTC/USD")
    p.add_argument("--spread", type=float, default=0.002, help="as a fraction of the mid")
    p.add_argument("--size", type=float, default=0.01)
    p.add_argument("--mid", type=float, default=30000, help="the mid of an empty market")
    p.add_argument("--every", type=float, default=5.0, help="seconds between quotes")
    p.add_argument("--rounds", type=int, default=0, help="stop after this many (0: run until Ctrl-C)")
    args = p.parse_args(argv)
    url = args.url.rstrip("/")
    key, secret = (args.key, args.secret) if args.key else own_key(url)
    ex = exchange(url, key, secret)
    ex.load_markets()
    rounds = 0
    try:
        while True:
            quote(ex, args.symbol, args.spread, args.size, args.mid)
            rounds += 1
            if args.rounds and rounds >= args.rounds:
                break
            time.sleep(args.every)
    except KeyboardInterrupt:
        pass
    finally:
        ex.cancel_all_orders(args.symbol)
        print("quotes cancelled; bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
