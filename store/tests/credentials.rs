//! Only those with credentials read or write: the embedded store draws a
//! password at each start and hands it out in its connection string; the
//! standalone store takes users from a flag or a file and, without any,
//! runs insecure on loopback only.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use eventstore::{AppendToStreamOptions, Client, EventData, ReadStreamOptions};
use store::EmbeddedStore;
use store::proto::streams::streams_client::StreamsClient;
use store::proto::streams::{ReadReq, read_req};
use store::proto::{Empty, server_features};

fn client(url: &str) -> Client {
    Client::new(url.parse().unwrap()).unwrap()
}

async fn append(client: &Client, stream: &str) -> Result<(), eventstore::Error> {
    client
        .append_to_stream(
            stream,
            &AppendToStreamOptions::default(),
            EventData::json("Deposited", &serde_json::json!({ "amount": "1000000" })).unwrap(),
        )
        .await
        .map(|_| ())
}

async fn read(client: &Client, stream: &str) -> Result<usize, eventstore::Error> {
    let mut read = client
        .read_stream(stream, &ReadStreamOptions::default())
        .await?;
    let mut n = 0;
    while read.next().await?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[tokio::test]
async fn the_embedded_store_admits_only_its_own_connection_string() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.connection_string();
    assert!(url.starts_with("esdb://admin:"), "credentials in {url}");
    assert!(!server.public_connection_string().contains(&url[13..45]));
    let owner = client(&url);
    append(&owner, "account-1").await.unwrap();
    assert_eq!(read(&owner, "account-1").await.unwrap(), 1);

    let addr = server.addr();
    let anonymous = client(&format!("esdb://{addr}?tls=false&discoveryInterval=0"));
    let wrong = client(&format!(
        "esdb://admin:guess@{addr}?tls=false&discoveryInterval=0"
    ));
    for (who, c) in [("no credentials", &anonymous), ("a wrong password", &wrong)] {
        assert!(
            matches!(
                append(c, "account-1").await,
                Err(eventstore::Error::AccessDenied)
            ),
            "{who} may not deposit"
        );
        assert!(
            matches!(
                read(c, "account-1").await,
                Err(eventstore::Error::AccessDenied)
            ),
            "{who} may not read"
        );
        assert!(
            matches!(
                c.tombstone_stream("orderbook-BTC-USD", &Default::default())
                    .await,
                Err(eventstore::Error::AccessDenied)
            ),
            "{who} may not tombstone"
        );
    }
    // Raw gRPC: UNAUTHENTICATED, never data; ServerFeatures stays open.
    let mut raw = StreamsClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let all = ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(read_req::options::StreamOption::All(
                read_req::options::AllOptions {
                    all_option: Some(read_req::options::all_options::AllOption::Start(Empty {})),
                },
            )),
            count_option: Some(read_req::options::CountOption::Count(10)),
            ..Default::default()
        }),
    };
    let status = raw
        .read(all)
        .await
        .expect_err("no data without credentials");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut features = server_features::server_features_client::ServerFeaturesClient::connect(
        format!("http://{addr}"),
    )
    .await
    .unwrap();
    features.get_supported_methods(Empty {}).await.unwrap();
    assert_eq!(
        read(&owner, "account-1").await.unwrap(),
        1,
        "nothing changed"
    );

    // Each start draws a new password.
    let other = EmbeddedStore::start(
        tempfile::tempdir().unwrap().path(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_ne!(
        other.connection_string().split('@').next(),
        url.split('@').next()
    );
}

/// Starts the standalone store: it, the line it prints and its data
/// folder, or what it said on failing.
fn spawn(args: &[&str]) -> Result<(std::process::Child, String, tempfile::TempDir), String> {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_store"))
        .args(args)
        .arg("--data")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .env_remove("STORE_USERS")
        .env_remove("STORE_USERS_FILE")
        .env_remove("STORE_INSECURE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok((child, line, data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_store_takes_its_users_and_is_insecure_only_on_loopback() {
    let refused = spawn(&["--listen", "0.0.0.0:0", "--insecure"]).expect_err("insecure on 0.0.0.0");
    assert!(refused.contains("not a loopback address"), "{refused}");
    // Without users, insecure only when asked for.
    let unasked = spawn(&["--listen", "127.0.0.1:0"]).expect_err("no users, no --insecure");
    assert!(
        unasked.contains("no users given") && unasked.contains("--insecure"),
        "{unasked}"
    );
    let bad = spawn(&["--listen", "127.0.0.1:0", "--users", "admin"]).expect_err("bad entry");
    assert!(bad.contains("name:password"), "{bad}");

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "# who may write\nexchange:hunter22\n").unwrap();
    for args in [
        vec![
            "--listen",
            "127.0.0.1:0",
            "--users",
            "exchange:hunter22,ops:other",
        ],
        vec![
            "--listen",
            "127.0.0.1:0",
            "--users-file",
            file.path().to_str().unwrap(),
        ],
    ] {
        let (mut child, line, _data) = spawn(&args).unwrap();
        assert!(
            !line.contains("hunter22"),
            "the password is never printed: {line}"
        );
        let addr = line.split_whitespace().nth(2).unwrap();
        let owner = client(&format!(
            "esdb://exchange:hunter22@{addr}?tls=false&discoveryInterval=0"
        ));
        append(&owner, "s").await.unwrap();
        let anonymous = client(&format!("esdb://{addr}?tls=false&discoveryInterval=0"));
        assert!(matches!(
            append(&anonymous, "s").await,
            Err(eventstore::Error::AccessDenied)
        ));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Insecure on loopback: it starts, and anyone there may write.
    let (mut child, line, _data) = spawn(&["--listen", "127.0.0.1:0", "--insecure"]).unwrap();
    let addr = line.split_whitespace().nth(2).unwrap();
    let anyone = client(&format!("esdb://{addr}?tls=false&discoveryInterval=0"));
    append(&anyone, "s").await.unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("running insecure"),
        "a warning at start"
    );
}
