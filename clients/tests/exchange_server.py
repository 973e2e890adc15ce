"""A real exchange server for the client tests: the built `exchange` binary
on a free port, with its own embedded store in a temporary folder, and the
steps a trader takes on the site before a program can trade (sign up, claim
the faucet, make an API key on the /keys page)."""

import html
import os
import re
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("EXCHANGE_BIN", os.path.join(ROOT, "target", "debug", "exchange"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Starts on enter, stops (and checks it stopped) on exit."""

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(os.path.join(self.dir.name, "server.log"), "w")
        self.process = subprocess.Popen(
            [BINARY, "--addr", self.url.removeprefix("http://"),
             "--data", os.path.join(self.dir.name, "data", "events")],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                requests.get(self.url + "/compat/binance/api/v3/ping", timeout=1)
                return self
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError("the exchange did not start: " + open(self.log.name).read())

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        self.dir.cleanup()

    def trader(self, name):
        """A signed-up trader's web session, with the faucet claimed."""
        web = requests.Session()
        for fn, form in [("sign_up", {"username": name, "password": "correct horse"}),
                         ("claim_faucet", {})]:
            r = web.post(f"{self.url}/api/{fn}", data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 200, (fn, r.status_code, r.text)
        return web

    def api_key(self, web, scopes=("read", "trade"), public_key=None):
        """Makes a key on the /keys page: its id, and its secret (HMAC)."""
        form = {"label": "ccxt", **{s: "on" for s in scopes}}
        if public_key:
            form["public_key"] = public_key
        page = web.post(f"{self.url}/keys", data=form)
        assert page.status_code == 200, page.text
        key = re.search(r"data-key-id=\"\">([^<]+)<", page.text).group(1)
        secret = re.search(r"data-secret=\"\">([^<]+)<", page.text)
        return html.unescape(key), secret and html.unescape(secret.group(1))
