#!/usr/bin/env bash
# Sets up what is missing and runs every check and test of the exchange:
# formatting, clippy, the Rust tests of every crate and the end-to-end tests
# in headless Chromium against the real server. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
export PATH="$HOME/.cargo/bin:$PWD/scripts/node_modules/.bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "formatting"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p app --features ssr --all-targets -- -D warnings
cargo clippy -p app -p frontend --features app/hydrate,frontend/hydrate --target wasm32-unknown-unknown -- -D warnings

step "Rust tests"
cargo test --workspace
cargo test -p app --features ssr

step "end-to-end tests"
cargo leptos build
(cd e2e && npx playwright test)
