"""Appends a market's events to a store, as an earlier exchange server left
them: how the end-to-end tests give a market a history older than what a
page is sent first (the chart then loads it as it zooms out).

Usage: seed_history.py HOST:PORT STREAM < events.jsonl

The events are the JSON lines `orderbook match` prints (the exchange's own
stored form); each is appended with its `type` as the event type, through
`kurrentdbclient`, in batches under the store's 1 MiB append limit. The
stream must not exist yet.
"""

import json
import sys

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState

BATCH_BYTES = 512 * 1024


def main() -> None:
    address, stream = sys.argv[1], sys.argv[2]
    lines = [line.strip() for line in sys.stdin if line.strip()]
    client = KurrentDBClient(uri=f"kurrentdb://{address}?tls=false")
    position = StreamState.NO_STREAM
    batch, size = [], 0
    for n, line in enumerate(lines):
        kind = json.loads(line)["type"]
        batch.append(NewEvent(type=kind, data=line.encode(), content_type="application/json"))
        size += len(line)
        if size >= BATCH_BYTES or n == len(lines) - 1:
            client.append_to_stream(stream, current_version=position, events=batch)
            position = n
            batch, size = [], 0
    client.close()
    print(f"appended {len(lines)} events to {stream}")


if __name__ == "__main__":
    main()
