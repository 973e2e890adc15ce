#!/usr/bin/env bash
# The exchange with its market simulator on: bot traders quote and trade
# every market, so the charts move from the first minute. Otherwise the
# same as scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export EXCHANGE_SIMULATE=true
exec scripts/run.sh "$@"
