"""The example market maker of the README runs against a server: it makes
its own account and key, quotes both sides, and cancels when it stops."""

import os
import sys

from exchange_server import ROOT, Server
from test_ccxt_binance import client

sys.path.insert(0, os.path.join(ROOT, "examples"))
import market_maker  # noqa: E402


def test_the_example_market_maker_quotes_both_sides_and_cleans_up(capsys):
    with Server() as server:
        assert market_maker.main(["--url", server.url, "--rounds", "2", "--every", "0.2"]) == 0
        out = capsys.readouterr().out
        assert out.count("BTC/USD: mid 30000") == 2, out
        assert "bid 29970.00 ask 30030.00" in out, out
        viewer = client(server, None, None)
        book = viewer.fetch_order_book("BTC/USD")
        assert book["bids"] == [] and book["asks"] == []
