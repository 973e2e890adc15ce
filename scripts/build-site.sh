#!/usr/bin/env bash
# Builds the site the way `cargo leptos build` lays it out in target/site
# (the server binary, the WASM bundle through wasm-bindgen, the stylesheet),
# with wasm-bindgen-cli alone, so neither running nor testing the exchange
# has to compile cargo-leptos (a quarter of an hour on 2 cores).
#   scripts/build-site.sh           debug, what the end-to-end tests serve;
#   scripts/build-site.sh release   the server in `release`, the bundle in
#                                   the size profile `wasm-release` and
#                                   shrunk by binaryen's wasm-opt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/scripts/node_modules/.bin:$PATH"
mode=${1:-debug}
case "$mode" in
  debug) server=(); wasm_profile=debug; wasm=() ;;
  release) server=(--release); wasm_profile=wasm-release; wasm=(--profile wasm-release) ;;
  *) echo "usage: scripts/build-site.sh [debug|release]" >&2; exit 2 ;;
esac
# The name of the WASM file the page loads is set for every build in
# .cargo/config.toml.
cargo build "${server[@]}" -p app --no-default-features --features ssr --bin exchange
cargo build "${wasm[@]}" -p frontend --lib --no-default-features --features hydrate \
  --target wasm32-unknown-unknown
pkg=target/site/pkg
mkdir -p "$pkg"
wasm-bindgen --target web --no-typescript --out-dir "$pkg" --out-name exchange \
  "target/wasm32-unknown-unknown/$wasm_profile/frontend.wasm"
if [ "$mode" = release ]; then
  # The features Rust 1.95 enables for wasm32-unknown-unknown by default.
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$pkg/exchange_bg.wasm" -o "$pkg/exchange.wasm"
  rm "$pkg/exchange_bg.wasm"
else
  mv "$pkg/exchange_bg.wasm" "$pkg/exchange.wasm"
fi
cp style/main.css "$pkg/exchange.css"
