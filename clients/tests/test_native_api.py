"""Our own client of the native API drives a running server: it signs
requests from the documentation alone, with HMAC and Ed25519 keys."""

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange_server import Server
from native_client import NativeClient


@pytest.fixture(scope="module")
def server():
    with Server() as s:
        yield s


def test_the_documented_api_is_served_and_trades(server):
    doc = requests.get(server.url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/orders", "/balances", "/markets/{symbol}/depth"} <= set(doc["paths"])
    assert "X-API-SIGNATURE" in doc["info"]["description"]

    key, secret = server.api_key(server.trader("nativeone"))
    me = NativeClient(server.url, key, secret)
    status, placed = me.place(symbol="BTC-USD", side="sell", kind="limit", price="30000",
                              quantity="0.5", client_order_id="n-1")
    assert status == 200, placed
    order_id = placed["order"]["order_id"]

    web = server.trader("nativetwo")
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    ed_key, _ = server.api_key(web, public_key=pem)
    other = NativeClient(server.url, ed_key, private_key=private)
    status, bought = other.place(symbol="BTC-USD", side="buy", kind="market", quantity="0.2")
    assert status == 200, bought
    assert bought["order"]["state"] == "filled" and bought["fills"][0]["price"] == "30000"

    status, got = me.request("GET", "/orders/BTC-USD/client/n-1")
    assert (status, got["order_id"], got["filled"], got["state"]) == (
        200, order_id, "0.2", "partially_filled")
    status, amended = me.request("PATCH", f"/orders/BTC-USD/{order_id}", body={"quantity": "0.1"})
    assert status == 200 and amended["quantity"] == "0.3", amended
    status, depth = me.request("GET", "/markets/BTC-USD/depth", {"levels": 1}, signed=False)
    assert depth["asks"] == [{"price": "30000", "quantity": "0.1", "orders": 1}]
    status, balances = me.request("GET", "/balances")
    btc = next(b for b in balances if b["asset"] == "BTC")
    assert btc["reserved"] == "0.1"

    # Wrong and missing signatures change nothing.
    liar = NativeClient(server.url, key, "not the secret")
    status, refused = liar.request("DELETE", f"/orders/BTC-USD/{order_id}")
    assert (status, refused["code"]) == (401, "unauthorized")
    status, refused = me.request("DELETE", f"/orders/BTC-USD/{order_id}", signed=False)
    assert status == 401
    status, cancelled = me.request("DELETE", f"/orders/BTC-USD/{order_id}")
    assert status == 200 and cancelled["state"] == "cancelled"
