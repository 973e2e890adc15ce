"""The store through a second official client, the Python `kurrentdbclient`.

Each expectation is what that client's own test suite asserts against a real
EventStoreDB/KurrentDB server: deletes and tombstones of missing and deleted
streams, version conflicts, metadata of deleted streams, the default filter
that leaves system events out with a look-ahead, catch-up to live, gossip.

The Python client sends credentials only over TLS, and the store speaks
cleartext gRPC, so these tests run the standalone store insecure on loopback
(the credentials have Rust tests of their own). `STORE_BIN` names the binary.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import (
    MaximumAppendSizeExceededError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)


@pytest.fixture(scope="module")
def store():
    data = tempfile.mkdtemp(prefix="store-py-")
    binary = os.environ.get("STORE_BIN", "target/debug/store")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--insecure", "--data", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    host, port = line.split()[2].rsplit(":", 1)
    yield host, int(port)
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "SIGTERM stops the store cleanly"
    shutil.rmtree(data)


@pytest.fixture
def client(store):
    host, port = store
    c = KurrentDBClient(uri=f"kurrentdb://{host}:{port}?tls=false")
    yield c
    c.close()


def events(n):
    return [NewEvent(type=f"Order{i}", data=b'{"i": %d}' % i) for i in range(n)]


def name():
    return f"py-{uuid.uuid4()}"


def test_appends_read_back_in_order_with_positions(client):
    stream = name()
    first = client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events(2))
    second = client.append_to_stream(stream, current_version=1, events=events(1))
    assert second > first
    recorded = client.get_stream(stream)
    assert [e.stream_position for e in recorded] == [0, 1, 2]
    assert recorded[2].commit_position == second
    assert client.get_current_version(stream) == 2
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream(stream, current_version=0, events=events(1))
    backwards = client.get_stream(stream, backwards=True, limit=2)
    assert [e.stream_position for e in backwards] == [2, 1]


def test_the_default_filter_leaves_system_events_out_with_a_look_ahead(client):
    stream = name()
    client.set_stream_metadata(stream, metadata={"$maxCount": 10})
    client.append_to_stream(stream, current_version=StreamState.ANY, events=events(3))
    # The client's default exclude filter is ^(?!(\$.+$|...)) on the type.
    default = [e for e in client.read_all() if e.stream_name in (stream, f"$${stream}")]
    assert [e.type for e in default] == ["Order0", "Order1", "Order2"]
    everything = [
        e for e in client.read_all(filter_exclude=[]) if e.stream_name in (stream, f"$${stream}")
    ]
    assert [e.type for e in everything] == ["$metadata", "Order0", "Order1", "Order2"]
    only = list(client.read_all(filter_include=["Order1"]))
    assert only and all(e.type == "Order1" for e in only)


def test_a_catch_up_subscription_goes_live_without_gaps(client):
    stream = name()
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events(2))
    subscription = client.subscribe_to_all(filter_include=[stream], filter_by_stream_name=True)
    seen = []
    for e in subscription:
        seen.append(e.stream_position)
        if len(seen) == 2:
            break
    client.append_to_stream(stream, current_version=1, events=events(2))
    for e in subscription:
        seen.append(e.stream_position)
        if len(seen) == 4:
            break
    subscription.stop()
    assert seen == [0, 1, 2, 3]


def test_soft_delete_answers_as_eventstoredb(client):
    stream = name()
    # Nothing to delete: refused, as not found, whatever is expected.
    for expected in (StreamState.ANY, StreamState.NO_STREAM, StreamState.EXISTS, 0):
        with pytest.raises(NotFoundError):
            client.delete_stream(stream, current_version=expected)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events(2))
    with pytest.raises(WrongCurrentVersionError):
        client.delete_stream(stream, current_version=5)
    client.delete_stream(stream, current_version=StreamState.ANY)
    # Deleting again is fine; expecting it to exist is told it is deleted.
    client.delete_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.delete_stream(stream, current_version=StreamState.EXISTS)
    with pytest.raises(NotFoundError):
        client.get_stream(stream)
    assert client.get_current_version(stream) == StreamState.NO_STREAM
    metadata, _ = client.get_stream_metadata(stream)
    assert metadata["$tb"] == 2**63 - 1
    # Appending undeletes; numbering goes on and only new events show.
    with pytest.raises(WrongCurrentVersionError):
        client.append_to_stream(stream, current_version=0, events=events(1))
    new = events(1)
    client.append_to_stream(stream, current_version=1, events=new)
    assert [e.id for e in client.get_stream(stream)] == [new[0].id]
    client.delete_stream(stream, current_version=StreamState.EXISTS)
    with pytest.raises(StreamIsDeletedError):
        client.delete_stream(stream, current_version=StreamState.EXISTS)


def test_tombstones_answer_as_eventstoredb(client):
    missing = name()
    client.tombstone_stream(missing, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream(missing, current_version=StreamState.NO_STREAM, events=events(1))
    with pytest.raises(NotFoundError):
        client.tombstone_stream(name(), current_version=StreamState.EXISTS)

    stream = name()
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events(2))
    client.set_stream_metadata(stream, metadata={"owner": "test"})
    with pytest.raises(WrongCurrentVersionError):
        client.tombstone_stream(stream, current_version=0)
    client.tombstone_stream(stream, current_version=1)
    for expected in (1, 2, StreamState.ANY):
        with pytest.raises(StreamIsDeletedError):
            client.tombstone_stream(stream, current_version=expected)
    with pytest.raises(StreamIsDeletedError):
        client.get_stream(stream)
    with pytest.raises(StreamIsDeletedError):
        client.get_current_version(stream)
    with pytest.raises(StreamIsDeletedError):
        client.append_to_stream(stream, current_version=1, events=events(1))
    # Its metadata went with it; setting metadata still works, as there.
    with pytest.raises(StreamIsDeletedError):
        client.get_stream_metadata(stream)
    client.set_stream_metadata(stream, metadata={"owner": "test"}, current_version=0)


def test_an_oversized_append_is_refused_and_writes_nothing(client):
    stream = name()
    with pytest.raises(MaximumAppendSizeExceededError):
        client.append_to_stream(
            stream,
            current_version=StreamState.ANY,
            events=[NewEvent(type="Big", data=b"x" * (1024 * 1024))],
        )
    with pytest.raises(NotFoundError):
        client.get_stream(stream)


def test_gossip_names_this_store_as_the_one_leader(client, store):
    host, port = store
    members = client.read_gossip()
    assert [(m.state, m.address, m.port) for m in members] == [("NODE_STATE_LEADER", host, port)]
