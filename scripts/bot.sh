#!/usr/bin/env bash
# Runs the example market maker (examples/market_maker.py) against a running
# exchange, first installing ccxt (pinned, with what it needs) into a venv of
# the project's own if it is not there yet. Flags go to the bot; see
# `scripts/bot.sh --help`. Start the exchange first: scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
reqs=clients/tests/requirements.txt
if ! cmp -s "$reqs" .tools/bot-venv/installed.txt 2>/dev/null; then
  printf '\033[1m==> %s\033[0m\n' "installing ccxt for the example bot"
  python3 -m venv .tools/bot-venv
  .tools/bot-venv/bin/pip install -q --disable-pip-version-check -r "$reqs"
  cp "$reqs" .tools/bot-venv/installed.txt
fi
exec .tools/bot-venv/bin/python examples/market_maker.py "$@"
