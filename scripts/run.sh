#!/usr/bin/env bash
# Sets up what is missing, builds the exchange in release mode and serves it
# at http://127.0.0.1:3000 (EXCHANGE_ADDR changes the address).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
export PATH="$HOME/.cargo/bin:$PWD/scripts/node_modules/.bin:$PATH"
exec cargo leptos serve --release "$@"
