//! Requests the official client would never send: each gets a clear error
//! status and writes nothing.

use std::collections::HashMap;

use bytes::Bytes;
mod common;

use common::insecure;

use store::proto::streams::streams_client::StreamsClient;
use store::proto::streams::{AppendReq, ReadReq, append_req, read_req};
use store::proto::{Empty, StreamIdentifier, Uuid, uuid};
use tonic::Code;

fn options(stream: &str) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: Some(StreamIdentifier {
                stream_name: Bytes::from(stream.to_string()),
            }),
            expected_stream_revision: Some(append_req::options::ExpectedStreamRevision::Any(
                Empty {},
            )),
        })),
    }
}

fn proposed(id: &str, metadata: &[(&str, &str)]) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(Uuid {
                    value: Some(uuid::Value::String(id.into())),
                }),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
                custom_metadata: Bytes::new(),
                data: Bytes::from_static(b"{}"),
            },
        )),
    }
}

const GOOD_ID: &str = "6f1c6f3e-4b8e-4a57-9a57-2f0e1d6c9b11";
const JSON: &[(&str, &str)] = &[("type", "A"), ("content-type", "application/json")];

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = insecure(dir.path()).await;
    let mut client = StreamsClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap();
    let cases: Vec<(&str, Vec<AppendReq>, Option<&str>)> = vec![
        (
            "an event before the options",
            vec![proposed(GOOD_ID, JSON)],
            None,
        ),
        ("nothing at all", vec![], None),
        (
            "no stream name",
            vec![options(""), proposed(GOOD_ID, JSON)],
            None,
        ),
        (
            "an id that is not a UUID",
            vec![options("s"), proposed("not-a-uuid", JSON)],
            None,
        ),
        (
            "no type metadata",
            vec![
                options("s"),
                proposed(GOOD_ID, &[("content-type", "application/json")]),
            ],
            Some("missing-required-metadata-property"),
        ),
        ("options twice", vec![options("s"), options("s")], None),
    ];
    for (what, messages, exception) in cases {
        let status = client
            .append(futures::stream::iter(messages))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            !status.message().is_empty(),
            "{what}: the error says what is wrong"
        );
        if let Some(e) = exception {
            assert_eq!(status.metadata().get("exception").unwrap(), e, "{what}");
        }
    }
    let status = client
        .read(ReadReq { options: None })
        .await
        .expect_err("read without options");
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad_filter = ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(read_req::options::StreamOption::All(
                read_req::options::AllOptions {
                    all_option: Some(read_req::options::all_options::AllOption::Start(Empty {})),
                },
            )),
            count_option: Some(read_req::options::CountOption::Count(10)),
            filter_option: Some(read_req::options::FilterOption::Filter(
                read_req::options::FilterOptions {
                    filter: Some(read_req::options::filter_options::Filter::EventType(
                        read_req::options::filter_options::Expression {
                            regex: "([".into(),
                            prefix: vec![],
                        },
                    )),
                    window: None,
                    checkpoint_interval_multiplier: 1,
                },
            )),
            ..Default::default()
        }),
    };
    let status = client.read(bad_filter).await.expect_err("a broken regex");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("regex"), "{}", status.message());
    // Nothing was written by any of it.
    assert_eq!(
        server.store().committed_end(),
        store::segment::HEADER,
        "the log holds only its header"
    );
}

/// A proposed event with the given type, content type and data.
fn sized(id: u128, event_type: &str, content_type: &str, data: usize) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(Uuid {
                    value: Some(uuid::Value::String(
                        ::uuid::Uuid::from_u128(id + 1).to_string(),
                    )),
                }),
                metadata: HashMap::from([
                    ("type".to_string(), event_type.to_string()),
                    ("content-type".to_string(), content_type.to_string()),
                ]),
                custom_metadata: Bytes::new(),
                data: Bytes::from(vec![b'x'; data]),
            },
        )),
    }
}

#[tokio::test]
async fn fields_the_log_could_not_hold_are_refused_and_nothing_is_written() {
    use store::limits::{MAX_CONTENT_TYPE, MAX_EVENT_TYPE, MAX_STREAM_NAME, RECORD_OVERHEAD};
    let dir = tempfile::tempdir().unwrap();
    let server = insecure(dir.path()).await;
    let mut client = StreamsClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap();
    let long_stream = "s".repeat(70_000);
    let long_type = "T".repeat(MAX_EVENT_TYPE + 1);
    let long_content = "c".repeat(MAX_CONTENT_TYPE + 1);
    // Empty events whose records alone pass the limit.
    let many = store::MAX_APPEND_SIZE / (RECORD_OVERHEAD + 1 + 1) + 1;
    let cases: Vec<(&str, Vec<AppendReq>, Option<&str>)> = vec![
        (
            "a 70,000-byte stream name",
            vec![options(&long_stream), sized(0, "A", "application/json", 2)],
            None,
        ),
        (
            "a stream name one byte over the limit",
            vec![
                options(&"s".repeat(MAX_STREAM_NAME + 1)),
                sized(0, "A", "application/json", 2),
            ],
            None,
        ),
        (
            "a type one byte over the limit",
            vec![options("s"), sized(0, &long_type, "application/json", 2)],
            None,
        ),
        (
            "a content type one byte over the limit",
            vec![options("s"), sized(0, "A", &long_content, 2)],
            None,
        ),
        (
            "more events than fit once each record's header counts",
            std::iter::once(options("s"))
                .chain((0..many as u128).map(|i| sized(i, "A", "b", 0)))
                .collect(),
            Some("maximum-append-size-exceeded"),
        ),
    ];
    for (what, messages, exception) in cases {
        let status = client
            .append(futures::stream::iter(messages))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains("at most") || exception.is_some(),
            "{what}: {status:?}"
        );
        if let Some(e) = exception {
            assert_eq!(status.metadata().get("exception").unwrap(), e, "{what}");
        }
    }
    // The same limits hold for in-process appends and deletes.
    let in_process = server
        .store()
        .append(
            Bytes::from(long_stream.clone()),
            store::Expected::Any,
            vec![],
        )
        .await;
    assert!(
        matches!(
            in_process,
            Err(store::StoreError::Invalid(store::Invalid::StreamName(
                70_000
            )))
        ),
        "{in_process:?}"
    );
    let deleted = server
        .store()
        .tombstone(Bytes::from(long_stream), store::Expected::Any)
        .await;
    assert!(
        matches!(deleted, Err(store::StoreError::Invalid(_))),
        "{deleted:?}"
    );
    assert_eq!(
        server.store().committed_end(),
        store::segment::HEADER,
        "nothing was written"
    );
    // What fits exactly is written and reads back.
    let fits = store::MAX_APPEND_SIZE - RECORD_OVERHEAD - MAX_STREAM_NAME - MAX_EVENT_TYPE;
    let name = "s".repeat(MAX_STREAM_NAME);
    client
        .append(futures::stream::iter(vec![
            options(&name),
            sized(0, &"T".repeat(MAX_EVENT_TYPE), "application/json", fits),
        ]))
        .await
        .expect("the largest append that fits");
    let read = server
        .store()
        .read_all(
            store::AllStart::Start,
            store::Direction::Forwards,
            10,
            |_| true,
        )
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].stream.len(), MAX_STREAM_NAME);
    assert_eq!(read[0].data.len(), fits);
}
