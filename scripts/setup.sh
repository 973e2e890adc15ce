#!/usr/bin/env bash
# Installs everything building, running and testing the exchange needs.
# Every step checks first and skips when it is already done, so a second run
# takes seconds. Usage: scripts/setup.sh run|test|dev
#   run   what building and serving the site needs (scripts/run.sh):
#         wasm-bindgen-cli and binaryen's wasm-opt;
#   test  what the test command needs: wasm-bindgen-cli, Chromium, the
#         e2e test packages and a Python venv with the second official
#         EventStoreDB client and ccxt;
#   dev   what `run` needs and cargo-leptos 0.3.10, for `cargo leptos
#         watch` (about 12 minutes to compile, so only on request).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PWD/scripts/node_modules/.bin:$PATH"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

mode=${1:-run}
case "$mode" in
  run|test|dev) ;;
  *) echo "usage: scripts/setup.sh run|test|dev" >&2; exit 2 ;;
esac

if [ "$mode" = dev ] && ! cargo leptos --version 2>/dev/null | grep -q ' 0\.3\.10$'; then
  step "installing cargo-leptos 0.3.10"
  cargo install cargo-leptos --version 0.3.10 --locked --features no_downloads
fi

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in
# Cargo.lock. A debug build: it compiles in well under half the time of a
# release build, which is most of a first run's setup, and binds our bundle
# in seconds all the same.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wb_version}\$"; then
  step "installing wasm-bindgen-cli ${wb_version}"
  cargo install wasm-bindgen-cli --version "=${wb_version}" --locked --debug
fi

# wasm-opt (release builds) comes from the npm package binaryen.
if [ "$mode" != test ] && [ ! -x scripts/node_modules/.bin/wasm-opt ]; then
  step "installing binaryen (wasm-opt)"
  (cd scripts && npm ci --no-audit --no-fund)
fi

if [ "$mode" = test ]; then
  if [ ! -x /usr/bin/chromium ]; then
    step "installing Chromium"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium
  fi
  # Two Python test clients, each pinned with everything it needs, in a
  # venv of the project's own: kurrentdbclient for the store
  # (store/tests/python) and ccxt for the Binance-compatible API
  # (clients/tests). Installed again only when a pin changes.
  wanted=$(cat store/tests/python/requirements.txt clients/tests/requirements.txt)
  if [ "$wanted" != "$(cat .tools/venv/installed.txt 2>/dev/null)" ]; then
    step "installing the Python test clients (kurrentdbclient, ccxt)"
    python3 -m venv .tools/venv
    .tools/venv/bin/pip install -q --disable-pip-version-check \
      -r store/tests/python/requirements.txt -r clients/tests/requirements.txt
    printf '%s\n' "$wanted" > .tools/venv/installed.txt
  fi
  if [ ! -d e2e/node_modules/@playwright/test ]; then
    step "installing the e2e test packages"
    (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
