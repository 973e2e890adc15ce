//! The time machine: scrub a market back to any moment of its history and
//! see its book, tape and chart as they were; play forward at 1x to 100x;
//! return to live with one click. The address holds the market and the
//! moment (`?market=BTC-USD&replay=1234`, the market's first 1,234
//! events), so a link opens that moment.
//!
//! The moment is rebuilt on the server, with the same pure `orderbook`
//! crate that matched the orders, from the market's stream: the book from
//! the stored snapshot before the moment (the leader writes one every
//! 4,096 events, `--snapshot-every`) and the events after it, so what the
//! screen shows is what the log says. On the server because the browser
//! would otherwise have to download the whole stream (a million events is
//! hundreds of megabytes) and carry the engine and exact decimals in its
//! bundle; the server has the log and the snapshots beside it, so a replay
//! costs a read of a snapshot and about one to two intervals of events
//! however long the history.

use leptos::prelude::*;

use crate::api::{DepthView, ReplayView, TradeView};
use crate::boundary::boundary;
use crate::candles::Interval;
use crate::chart::ChartHandle;
use crate::error::UserError;
use crate::time_format::time_label;

/// How often playing moves the replay on.
const PLAY_STEP_MS: u64 = 250;
/// The speeds playing offers.
const SPEEDS: [u32; 4] = [1, 10, 50, 100];

/// A market as it was after its first `events` events, or at `at_ms`
/// (milliseconds since the Unix epoch): give exactly one of the two.
#[server(endpoint = "replay_market")]
pub async fn replay_market(
    symbol: String,
    events: Option<u64>,
    at_ms: Option<u64>,
) -> Result<ReplayView, UserError> {
    use crate::server::ReplayTo;
    use crate::server::request_limits::REPLAY_WEIGHT;
    crate::site::context::spend_weight(REPLAY_WEIGHT).await?;
    let to = match (events, at_ms) {
        (Some(n), None) => ReplayTo::Events(n),
        (None, Some(t)) => ReplayTo::Time(t),
        _ => {
            return Err(UserError::new(
                "say where to replay to: either events (how many of the market's events) or \
                 at_ms (a time), not both",
            ));
        }
    };
    let exchange = crate::site::context::exchange()?;
    Ok(exchange.replay(&symbol, to).await?)
}

/// The page's replay: the moment shown while replaying, and its own chart.
#[derive(Clone, Copy)]
pub struct Replay {
    /// `Some` while replaying.
    pub view: RwSignal<Option<ReplayView>>,
    pub playing: RwSignal<bool>,
    pub speed: RwSignal<u32>,
    /// The replayed moment's chart, beside the live one (which keeps
    /// taking live trades meanwhile).
    pub chart: ChartHandle,
    /// The replay's clock: the moment asked for by time, or the time of
    /// the last event replayed. Playing moves it on steadily, also across
    /// stretches with no events.
    clock_ms: RwSignal<Option<u64>>,
    /// Counts requests, so only the newest answer is shown.
    asked: RwSignal<u64>,
    /// Whether an answer is still on its way: playing waits for it rather
    /// than ask again (and drop it) on a slow connection.
    waiting: RwSignal<bool>,
    /// The moment the scrubber was moved to while an answer was on its
    /// way, asked for once it came (see [`Replay::scrub`]).
    scrubbed: RwSignal<Option<(String, u64)>>,
}

impl Default for Replay {
    fn default() -> Replay {
        Replay {
            view: RwSignal::new(None),
            playing: RwSignal::new(false),
            speed: RwSignal::new(10),
            chart: ChartHandle::new(Vec::new()),
            clock_ms: RwSignal::new(None),
            asked: RwSignal::new(0),
            waiting: RwSignal::new(false),
            scrubbed: RwSignal::new(None),
        }
    }
}

impl Replay {
    pub fn active(&self) -> bool {
        self.view.with(Option::is_some)
    }

    /// The depth to show: the replayed moment's while replaying.
    pub fn depth_or(&self, live: RwSignal<DepthView>) -> DepthView {
        self.view
            .with(|v| v.as_ref().map(|r| r.depth.clone()))
            .unwrap_or_else(|| live.get())
    }

    /// The trades to show: the replayed moment's while replaying.
    pub fn trades_or(&self, live: RwSignal<Vec<TradeView>>) -> Vec<TradeView> {
        self.view
            .with(|v| v.as_ref().map(|r| r.trades.clone()))
            .unwrap_or_else(|| live.get())
    }

    /// Goes to a moment of `symbol` (and into replay, if not in it).
    pub fn go(&self, symbol: String, events: Option<u64>, at_ms: Option<u64>) {
        let this = *self;
        this.asked.update(|n| *n += 1);
        if at_ms.is_some() {
            this.clock_ms.set(at_ms);
        }
        let ticket = this.asked.get_untracked();
        this.waiting.set(true);
        leptos::task::spawn_local(async move {
            let answer = replay_market(symbol, events, at_ms).await;
            this.scrubbed_next();
            let Ok(view) = answer else {
                this.playing.set(false);
                return;
            };
            if this.asked.get_untracked() != ticket {
                return;
            }
            if view.events >= view.total {
                this.playing.set(false);
            }
            if at_ms.is_none() {
                this.clock_ms.set(view.at_ms);
            }
            // Its canvas comes with the replay: `reset` draws on it when
            // it is there, and the chart draws what it holds when mounted.
            this.chart.reset(view.series.clone());
            remember(Some((&view.symbol, view.events)));
            this.view.set(Some(view));
        });
    }

    /// Goes to the moment the scrubber was dragged to. A drag moves it
    /// dozens of times a second, and each replay is one of the server's
    /// costly reads (paced per address: a burst of them is refused). So
    /// while an answer is on its way only the newest moment is kept, and
    /// asked for a play step after that answer: a drag costs about four
    /// replays a second, within the pace, and always ends on the moment
    /// where it stopped.
    pub fn scrub(&self, symbol: String, events: u64) {
        if self.waiting.get_untracked() {
            self.scrubbed.set(Some((symbol, events)));
        } else {
            self.go(symbol, Some(events), None);
        }
    }

    /// An answer came: done waiting, unless the scrubber moved meanwhile;
    /// then its newest moment is asked for a play step later (and until
    /// then the replay still waits, so further moves only replace it).
    fn scrubbed_next(&self) {
        let this = *self;
        if this.scrubbed.with_untracked(Option::is_none) {
            this.waiting.set(false);
            return;
        }
        set_timeout(
            move || {
                this.waiting.set(false);
                if let Some((symbol, events)) = this.scrubbed.try_update(Option::take).flatten() {
                    this.go(symbol, Some(events), None);
                }
            },
            std::time::Duration::from_millis(PLAY_STEP_MS),
        );
    }

    /// Back to the live market.
    pub fn leave(&self) {
        self.asked.update(|n| *n += 1);
        self.playing.set(false);
        self.scrubbed.set(None);
        self.view.set(None);
        remember(None);
    }
}

/// Puts the moment shown into the address (or takes it out), so the
/// address is a link to it.
fn remember(moment: Option<(&str, u64)>) {
    #[cfg(feature = "hydrate")]
    {
        let Some(window) = web_sys::window() else {
            return;
        };
        let path = window.location().pathname().unwrap_or_default();
        let url = match moment {
            Some((symbol, events)) => format!("{path}?market={symbol}&replay={events}"),
            None => path,
        };
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(
                &leptos::wasm_bindgen::JsValue::NULL,
                "",
                Some(&url),
            );
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = moment;
}

/// The market and moment a link asks for: `?market=...&replay=N`.
#[cfg(feature = "hydrate")]
pub fn linked_moment() -> Option<(String, u64)> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    let events = params.get("replay")?.parse().ok()?;
    Some((params.get("market")?, events))
}

/// The server renders the page as it is live; the browser opens a link's
/// moment once hydrated.
#[cfg(not(feature = "hydrate"))]
pub fn linked_moment() -> Option<(String, u64)> {
    None
}

/// The header's button into the time machine.
#[component]
pub fn ReplayButton(replay: Replay, symbol: Signal<String>) -> impl IntoView {
    view! {
        <button type="button" class="secondary replay-button" data-testid="replay"
            aria-pressed=move || replay.active().to_string()
            on:click=move |_| {
                if replay.active() {
                    replay.leave();
                } else {
                    replay.go(symbol.get_untracked(), Some(u64::MAX), None);
                }
            }>
            "Replay"
        </button>
    }
}

/// The bar shown while replaying: back to live, play and pause, the speed,
/// and the scrubber over the market's whole history.
#[component]
pub fn ReplayBar(replay: Replay, symbol: Signal<String>) -> impl IntoView {
    // Playing moves on by the speed times the time that passed.
    Effect::new(move |_| {
        if !replay.playing.get() {
            return;
        }
        let handle = set_interval_with_handle(
            move || {
                if replay.waiting.get_untracked() {
                    return;
                }
                let step = PLAY_STEP_MS * u64::from(replay.speed.get_untracked());
                let next = replay.clock_ms.get_untracked().map_or(0, |t| t + step);
                replay.go(symbol.get_untracked(), None, Some(next));
            },
            std::time::Duration::from_millis(PLAY_STEP_MS),
        );
        if let Ok(handle) = handle {
            on_cleanup(move || handle.clear());
        }
    });
    // Another market than the one replayed: back to live.
    Effect::new(move |_| {
        let now = symbol.get();
        if replay
            .view
            .with_untracked(|v| v.as_ref().is_some_and(|r| r.symbol != now))
        {
            replay.leave();
        }
    });
    let moment = move || replay.view.get();
    let when = move || {
        moment().map(|_| match replay.clock_ms.get() {
            Some(t) => {
                let date = time_label(t as f64, Interval::D1);
                let clock = time_label(t as f64, Interval::M1);
                format!("{date} {clock}:{:02} UTC", t / 1000 % 60)
            }
            None => "before the first event".to_string(),
        })
    };
    boundary(view! {
        <div class="replay-bar" data-testid="replay-bar" hidden=move || !replay.active()
            role="group" aria-label="Replay">
            <button type="button" on:click=move |_| replay.leave()>"Back to live"</button>
            <button type="button" class="secondary" data-testid="replay-play"
                aria-pressed=move || replay.playing.get().to_string()
                on:click=move |_| replay.playing.update(|p| *p = !*p)>
                {move || if replay.playing.get() { "Pause" } else { "Play" }}
            </button>
            <label class="replay-speed">
                <span class="visually-hidden">"Speed"</span>
                <select aria-label="Speed" on:change=move |ev| {
                    if let Ok(s) = event_target_value(&ev).parse() {
                        replay.speed.set(s);
                    }
                }>
                    {SPEEDS.into_iter().map(|s| view! {
                        <option value=s.to_string() selected=move || replay.speed.get() == s>{format!("{s}x")}</option>
                    }).collect_view()}
                </select>
            </label>
            <input type="range" class="replay-scrub" data-testid="replay-scrub" min="0"
                aria-label="Moment to replay (the market's events)"
                prop:max=move || moment().map_or(0, |r| r.total).to_string()
                prop:value=move || moment().map_or(0, |r| r.events).to_string()
                on:input=move |ev| {
                    if let Ok(n) = event_target_value(&ev).parse() {
                        replay.scrub(symbol.get_untracked(), n);
                    }
                } />
            <span class="replay-when" data-testid="replay-when">{when}</span>
            <span class="replay-events">
                {move || moment().map(|r| format!("event {} of {}", r.events, r.total))}
            </span>
        </div>
    })
}
