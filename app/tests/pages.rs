//! Server-rendered pages on a thread pool, as the server binary renders them.
//!
//! A test binary of its own: the reactive system's state is global to a
//! process, and this test should see only its own pages.
#![cfg(feature = "ssr")]

use std::path::Path;
use std::time::Duration;

use app::server::{Connection, Exchange, Settings};
use app::site::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Streaming rendering may finish (and drop) a page's reactive state on
/// another worker thread than the one that began it: no page may hold
/// thread-bound state on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_whole_on_a_thread_pool() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap();
    let data = dir.path().join("events");
    let exchange = Exchange::start(settings, Connection::Embedded { data })
        .await
        .unwrap();
    let router = router(
        Path::new("target/site"),
        "127.0.0.1:0".parse().unwrap(),
        exchange,
        Default::default(),
    );
    let pages: Vec<_> = (0..40)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                let request = Request::get("/").body(Body::empty()).unwrap();
                let response = router.oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            })
        })
        .collect();
    for page in pages {
        let html = tokio::time::timeout(Duration::from_secs(30), page)
            .await
            .expect("a page never finished")
            .expect("rendering a page panicked");
        // Streaming rendering sends the resolved parts after the shell.
        assert!(html.contains("<canvas") && html.contains("</html>"));
        assert!(
            html.contains("__INCOMPLETE_CHUNKS"),
            "the stream was cut short"
        );
    }
}
