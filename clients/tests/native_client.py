"""A small client of the exchange's native API (/api/v1), written from its
documentation alone: each signed request carries X-API-KEY,
X-API-TIMESTAMP and X-API-SIGNATURE over
"{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n{body}"."""

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode, urlsplit

import requests


class NativeClient:
    def __init__(self, url, key=None, secret=None, private_key=None):
        """`secret` for an HMAC key, `private_key` (cryptography's
        Ed25519PrivateKey) for an Ed25519 one."""
        self.url, self.key, self.secret, self.private_key = url, key, secret, private_key
        self.http = requests.Session()

    def sign(self, payload):
        if self.private_key is not None:
            return base64.b64encode(self.private_key.sign(payload.encode())).decode()
        return hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    def request(self, method, path, params=None, body=None, signed=True):
        query = urlencode(params or {})
        text = json.dumps(body) if body is not None else ""
        url = f"{self.url}/api/v1{path}" + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/json"}
        if signed:
            stamp = str(int(time.time() * 1000))
            payload = f"{stamp}\n{method}\n{urlsplit(url).path}\n{query}\n{text}"
            headers.update({"X-API-KEY": self.key, "X-API-TIMESTAMP": stamp,
                            "X-API-SIGNATURE": self.sign(payload)})
        r = self.http.request(method, url, data=text.encode() or None, headers=headers)
        return r.status_code, r.json()

    def place(self, **order):
        return self.request("POST", "/orders", body=order)
