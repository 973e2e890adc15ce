#!/usr/bin/env bash
# Builds what the end-to-end tests serve, in debug: the server binary, the
# WASM bundle (through wasm-bindgen) and the stylesheet, laid out in
# target/site as `cargo leptos build` lays them out. It needs only
# wasm-bindgen-cli, so the test command does not have to install
# cargo-leptos (which takes a quarter of an hour to compile).
set -euo pipefail
cd "$(dirname "$0")/.."
# Leptos reads this at compile time to name the WASM file the page loads.
export LEPTOS_OUTPUT_NAME=exchange
cargo build -p app --no-default-features --features ssr --bin exchange
cargo build -p frontend --lib --no-default-features --features hydrate --target wasm32-unknown-unknown
pkg=target/site/pkg
mkdir -p "$pkg"
wasm-bindgen --target web --no-typescript --out-dir "$pkg" --out-name exchange \
  target/wasm32-unknown-unknown/debug/frontend.wasm
mv "$pkg/exchange_bg.wasm" "$pkg/exchange.wasm"
cp style/main.css "$pkg/exchange.css"
