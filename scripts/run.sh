#!/usr/bin/env bash
# Sets up what is missing, builds the exchange in release mode and serves it
# at http://127.0.0.1:3000 (EXCHANGE_ADDR changes the address; every flag
# of the server binary can follow, see `--help`). For a development loop
# that rebuilds on every change, see `scripts/setup.sh dev` in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
scripts/build-site.sh release
exec target/release/exchange "$@"
