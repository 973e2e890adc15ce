//! The live link between one browser and the server.
//!
//! A streaming (websocket) server function pushes a clock tick every quarter
//! second. It proves the whole live path — server task, websocket, hydrated
//! client, reactive update — that market data will travel later. The client
//! reconnects by itself with exponential backoff when the socket drops.

use leptos::prelude::*;
use leptos::server_fn::{BoxedStream, Websocket, codec::JsonEncoding};
use serde::{Deserialize, Serialize};

/// One tick of the server clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockTick {
    /// Ticks sent on this connection so far, starting at 1.
    pub seq: u64,
    /// Server wall-clock time in milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// What the client sends up the socket. Nothing yet: the type exists so the
/// upstream half of the socket has a schema when subscriptions arrive.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClockRequest {}

/// Interval between ticks, in milliseconds.
pub const TICK_MS: u64 = 250;

/// Streams a [`ClockTick`] every [`TICK_MS`] until the client goes away.
#[server(protocol = Websocket<JsonEncoding, JsonEncoding>)]
pub async fn server_clock(
    requests: BoxedStream<ClockRequest, ServerFnError>,
) -> Result<BoxedStream<ClockTick, ServerFnError>, ServerFnError> {
    use futures::{SinkExt, channel::mpsc};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    // The client sends nothing yet; dropping its half is fine.
    drop(requests);
    let (mut tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(TICK_MS));
        let mut seq = 0;
        loop {
            interval.tick().await;
            seq += 1;
            let unix_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            // A failed send means the socket closed: end the task with it.
            if tx.send(Ok(ClockTick { seq, unix_ms })).await.is_err() {
                break;
            }
        }
    });
    Ok(rx.into())
}

/// The state of the live link as the page sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    Reconnecting,
}

/// Reactive handles onto the server clock stream.
#[derive(Clone, Copy)]
pub struct ClockFeed {
    /// The most recent tick, with the browser time (ms) it arrived at.
    pub latest: ReadSignal<Option<(ClockTick, f64)>>,
    /// Whether the socket is currently open.
    pub link: ReadSignal<Link>,
}

/// Opens the clock stream in the browser. On the server it only creates the
/// signals, so the first render shows "connecting".
pub fn use_server_clock() -> ClockFeed {
    let (latest, set_latest) = signal(None);
    let (link, set_link) = signal(Link::Connecting);
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(browser::run(set_latest, set_link));
    #[cfg(not(feature = "hydrate"))]
    let _ = (set_latest, set_link);
    ClockFeed { latest, link }
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use futures::StreamExt;

    const FIRST_RETRY_MS: u64 = 250;
    const MAX_RETRY_MS: u64 = 8_000;

    /// Keeps one socket open for the page's lifetime, reconnecting with
    /// exponential backoff that resets once a connection delivers a tick.
    pub async fn run(
        set_latest: WriteSignal<Option<(ClockTick, f64)>>,
        set_link: WriteSignal<Link>,
    ) {
        let mut retry_ms = FIRST_RETRY_MS;
        loop {
            // Holding the sender keeps the upstream half of the socket open.
            let (_requests, rx) =
                futures::channel::mpsc::channel::<Result<ClockRequest, ServerFnError>>(1);
            if let Ok(mut ticks) = server_clock(rx.into()).await {
                while let Some(Ok(tick)) = ticks.next().await {
                    retry_ms = FIRST_RETRY_MS;
                    set_link.set(Link::Live);
                    set_latest.set(Some((tick, js_sys_now())));
                }
            }
            set_link.set(Link::Reconnecting);
            sleep_ms(retry_ms).await;
            retry_ms = (retry_ms * 2).min(MAX_RETRY_MS);
        }
    }

    fn js_sys_now() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.time_origin() + p.now())
    }

    async fn sleep_ms(ms: u64) {
        let (done, wait) = futures::channel::oneshot::channel::<()>();
        set_timeout(
            move || {
                let _ = done.send(());
            },
            std::time::Duration::from_millis(ms),
        );
        let _ = wait.await;
    }
}

/// A small badge in the header that says whether the page is live.
#[component]
pub fn LinkStatus(clock: ClockFeed) -> impl IntoView {
    let label = move || match clock.link.get() {
        Link::Connecting => "Connecting",
        Link::Live => "Live",
        Link::Reconnecting => "Reconnecting",
    };
    let seq = move || {
        clock
            .latest
            .get()
            .map(|(t, _)| t.seq.to_string())
            .unwrap_or_default()
    };
    view! {
        <div class="link-status" data-link=move || label().to_lowercase()>
            <span class="dot" aria-hidden="true"></span>
            <span class="label">{label}</span>
            <span class="tick-count" data-testid="tick-seq">{seq}</span>
        </div>
    }
}
