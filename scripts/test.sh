#!/usr/bin/env bash
# Sets up what is missing and runs every check and test of the exchange:
# formatting, clippy, the Rust tests of every crate and the end-to-end tests
# in headless Chromium against the real server. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/scripts/node_modules/.bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "imports"
# No two modules of a crate import each other (directly or in a loop), and
# nothing under app/src/server imports the pages, the browser code or the
# HTTP edge above it. How it reads the code: the script's own docs.
python3 scripts/imports.py

step "clippy"
# The app is linted as the server builds it (ssr) and as the browser does.
cargo clippy --workspace --all-targets --features app/ssr -- -D warnings
# bench-chart is hydrate plus the in-browser chart benchmark: one pass lints both.
cargo clippy -p app -p frontend --features frontend/bench-chart --target wasm32-unknown-unknown -- -D warnings

step "Rust tests"
cargo test --workspace --features app/ssr

step "the store through a second official client (Python kurrentdbclient)"
STORE_BIN=target/debug/store .tools/venv/bin/python -m pytest -q -p no:cacheprovider store/tests/python

step "trading programs: ccxt's Binance class against the server (Python ccxt)"
cargo build -p app --features ssr --bin exchange
EXCHANGE_BIN=target/debug/exchange .tools/venv/bin/python -m pytest -q -p no:cacheprovider clients/tests

step "end-to-end tests"
scripts/build-site.sh
# The screen tests write a market's history with these before a server starts.
cargo build -p orderbook -p store --bins
(cd e2e && npx playwright test)
