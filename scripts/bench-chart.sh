#!/usr/bin/env bash
# Times the price chart in headless Chromium (not part of the tests): full
# redraws and appending live trades with 10,000 one-minute candles of
# history, in the WASM profile the site ships (opt-level z, LTO). POINTS,
# REDRAWS, APPENDS and DEVICE_SCALE change the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -p frontend --lib --no-default-features --features bench-chart \
  --profile wasm-release --target wasm32-unknown-unknown
out=target/bench-chart
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name exchange \
  target/wasm32-unknown-unknown/wasm-release/frontend.wasm
cd e2e && node bench/chart.mjs "../$out"
