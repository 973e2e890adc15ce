//! An exchange stopped inside a process that goes on (a test, a bench, a
//! server that restarts its exchange) leaves no task behind that asks the
//! store it stopped for anything: the store's client would log each loss
//! as an error. The start snapshot writer looks at the log every 10 s, so
//! the process waits past that after the stop.
#![cfg(feature = "ssr")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::server::{Connection, Exchange, Settings};

/// Every log line of the process, kept.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<u8>>>);

impl Write for Kept {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_exchange_asks_its_stopped_store_nothing() {
    let kept = Kept::default();
    let writer = kept.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("info")
        .init();
    let settings = Settings::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let connection = Connection::Embedded { data: data.clone() };
    let exchange = Exchange::start(settings.clone(), connection).await.unwrap();
    let leads = matches!(
        exchange.role(),
        app::server::leadership::Role::Leader { .. }
    );
    assert!(leads, "it leads, so it writes start snapshots");
    exchange.stop().await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    // And it starts again on the same log, as a restart does.
    let connection = Connection::Embedded { data };
    let again = Exchange::start(settings, connection).await.unwrap();
    again.stop().await;
    let log = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("started in").count(), 2, "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
