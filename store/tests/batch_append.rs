//! Batch-append calls driven request by request (the official client
//! sends each append whole, as one final request): appends that span
//! several requests, and requests that lack what they need.

use bytes::Bytes;
mod common;

use common::insecure;
use store::EmbeddedStore;

use store::proto::streams::streams_client::StreamsClient;
use store::proto::streams::{BatchAppendReq, batch_append_req, batch_append_resp};
use store::proto::{StreamIdentifier, Uuid, uuid};
use tonic::Code;
use tonic::transport::Channel;

const ID: &str = "6f1c6f3e-4b8e-4a57-9a57-2f0e1d6c9b11";

async fn start() -> (tempfile::TempDir, EmbeddedStore, StreamsClient<Channel>) {
    let dir = tempfile::tempdir().unwrap();
    let server = insecure(dir.path()).await;
    let client = StreamsClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap();
    (dir, server, client)
}

/// An event id from a number, in the string form.
fn id(n: u8) -> String {
    format!("6f1c6f3e-4b8e-4a57-9a57-2f0e1d6c9b{n:02x}")
}

fn batch(correlation: u128, stream: Option<&str>, event: Option<&str>) -> BatchAppendReq {
    BatchAppendReq {
        correlation_id: Some(Uuid {
            value: Some(uuid::Value::Structured(uuid::Structured {
                most_significant_bits: (correlation >> 64) as i64,
                least_significant_bits: correlation as i64,
            })),
        }),
        options: stream.map(|s| batch_append_req::Options {
            stream_identifier: Some(StreamIdentifier {
                stream_name: Bytes::from(s.to_string()),
            }),
            expected_stream_position: None,
            deadline_option: None,
        }),
        proposed_messages: event
            .map(|id| batch_append_req::ProposedMessage {
                id: Some(Uuid {
                    value: Some(uuid::Value::String(id.into())),
                }),
                metadata: [("type", "A"), ("content-type", "application/json")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                custom_metadata: Bytes::new(),
                data: Bytes::from_static(b"{}"),
            })
            .into_iter()
            .collect(),
        is_final: true,
    }
}

/// Each bad request of a batch-append call gets an error reply for its own
/// correlation id; one without a correlation id ends the call.
#[tokio::test]
async fn batch_appends_without_what_they_need_are_refused() {
    let (_dir, server, mut client) = start().await;
    let requests = vec![
        batch(1, None, Some(ID)),
        batch(2, Some(""), Some(ID)),
        batch(3, Some("s"), Some("not-a-uuid")),
    ];
    let mut replies = client
        .batch_append(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    for (n, what) in [(1, "options"), (2, "stream"), (3, "UUID")] {
        let reply = replies.message().await.unwrap().expect("a reply");
        assert_eq!(reply.correlation_id, batch(n, None, None).correlation_id);
        let Some(batch_append_resp::Result::Error(status)) = reply.result else {
            panic!("request {n} was accepted: {reply:?}");
        };
        assert_eq!(status.code, Code::InvalidArgument as i32, "request {n}");
        assert!(
            status.message.contains(what),
            "request {n}: {}",
            status.message
        );
    }
    assert!(replies.message().await.unwrap().is_none());
    let mut no_id = batch(4, Some("s"), Some(ID));
    no_id.correlation_id = None;
    let status = client
        .batch_append(futures::stream::iter([no_id]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .expect_err("no correlation id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        server.store().committed_end(),
        store::segment::HEADER,
        "nothing was written: the log holds only its header"
    );
}

/// One append sent in three requests: written once it is final, whole and
/// in order; a second append on the same call and stream goes on after it.
#[tokio::test]
async fn an_append_may_span_several_requests() {
    let (_dir, server, mut client) = start().await;
    let mut first = batch(7, Some("chunked"), Some(&id(1)));
    first.is_final = false;
    let mut second = batch(7, None, Some(&id(2)));
    second.is_final = false;
    let last = batch(7, None, Some(&id(3)));
    let after = batch(8, Some("chunked"), Some(&id(4)));
    let mut replies = client
        .batch_append(futures::stream::iter([first, second, last, after]))
        .await
        .unwrap()
        .into_inner();
    let mut revisions = Vec::new();
    while let Some(reply) = replies.message().await.unwrap() {
        let Some(batch_append_resp::Result::Success(ok)) = reply.result else {
            panic!("refused: {reply:?}");
        };
        let Some(batch_append_resp::success::CurrentRevisionOption::CurrentRevision(r)) =
            ok.current_revision_option
        else {
            panic!("no revision: {ok:?}");
        };
        revisions.push(r);
    }
    revisions.sort_unstable();
    assert_eq!(revisions, [2, 3], "three events, then one more");
    let ids: Vec<u128> = server
        .store()
        .read_all(
            store::AllStart::Start,
            store::Direction::Forwards,
            10,
            |_| true,
        )
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let want: Vec<u128> = (1..=4u8)
        .map(|n| u128::from_str_radix(&id(n).replace('-', ""), 16).unwrap())
        .collect();
    assert_eq!(ids, want);
}

/// Appends begun and never finished are bounded per call.
#[tokio::test]
async fn unfinished_appends_are_bounded() {
    let (_dir, server, mut client) = start().await;
    let requests = (0..=store::MAX_UNFINISHED_APPENDS as u128).map(|n| {
        let mut r = batch(100 + n, Some("open"), Some(ID));
        r.is_final = false;
        r
    });
    let status = client
        .batch_append(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .expect_err("too many unfinished appends");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        server.store().committed_end(),
        store::segment::HEADER,
        "nothing was written"
    );
}
