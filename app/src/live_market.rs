//! What a viewer watches: the chart, the order book's depth, the tape of
//! recent trades and the 24-hour ticker of one market, rendered first from
//! the server's snapshot and then kept live by the market feed.
//!
//! The feed is [`market_feed`], a websocket server function (the site
//! serves it on a socket that bounds incoming messages: `feed_socket`). The browser
//! asks it to watch the market from the snapshot's position; for that one
//! client the server keeps a subscription of its own inside the server's one
//! store subscription (`server::live_tail`), and forwards the trades of the
//! watched market, depth when the book changed, and a heartbeat with the
//! ticker and the position reached, the messages ready at once in one frame.
//! Asking to watch another market switches
//! the subscription on the same socket. When the socket drops, the browser
//! reconnects with backoff and resumes from the
//! last position it received, so no trade is missed or shown twice.
//!
//! While the time machine replays a moment (`time_machine`), the book,
//! tape and chart show that moment; the live state goes on underneath, so
//! going back to live is instant and misses nothing.

use leptos::prelude::*;
use leptos::server_fn::{BoxedStream, Websocket, codec::JsonEncoding};

use crate::api::{
    AccountView, DepthView, FeedMessage, FeedPosition, FeedRequest, FillView, LevelView,
    MarketSnapshot, TAPE, TickerView, TradeView,
};
use crate::boundary::boundary;
use crate::chart::{ChartHandle, PriceChart};
use crate::depth_chart::DepthChart;
use crate::time_machine::Replay;

/// The live feed of one browser page: see the module docs.
#[server(endpoint = "market_feed", protocol = Websocket<JsonEncoding, JsonEncoding>)]
pub async fn market_feed(
    requests: BoxedStream<FeedRequest, ServerFnError>,
) -> Result<BoxedStream<Vec<FeedMessage>, ServerFnError>, ServerFnError> {
    use crate::server::feed;
    use crate::site::context;
    use std::time::Duration;
    let exchange = context::exchange().map_err(|e| ServerFnError::new(e.message))?;
    let (limits, counts, address) = context::feed_admission().await;
    let Some(slot) = counts.admit(address, limits.sockets_per_address) else {
        let why = format!(
            "too many open market feeds from your address (at most {}); close another tab",
            limits.sockets_per_address
        );
        return Ok(feed::frames(feed::refuse(why), Duration::ZERO).into());
    };
    // The socket's session names the account it may follow: nobody else's.
    let session = context::current_trader().map(|t| t.session);
    let resumes = context::request_limits().map(|limits| feed::Resumes { limits, address });
    let gather = Duration::from_millis(limits.gather_ms);
    let feed = feed::open(exchange, requests, limits, Some(slot), session, resumes);
    Ok(feed::frames(feed, gather).into())
}

/// Whether the page's live link is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    Reconnecting,
}

/// The live state of the watched market.
#[derive(Clone, Copy)]
pub struct MarketState {
    pub symbol: RwSignal<String>,
    pub trades: RwSignal<Vec<TradeView>>,
    pub depth: RwSignal<DepthView>,
    pub ticker: RwSignal<TickerView>,
    pub link: RwSignal<Link>,
    /// The last position received: where a reconnect resumes.
    pub position: RwSignal<Option<FeedPosition>>,
    /// Incremented for every live trade, so tests and the page can tell
    /// trades arrived without re-rendering anything else.
    pub received: RwSignal<u64>,
    pub chart: ChartHandle,
    /// The time machine: while it replays, the book, tape and chart show
    /// the replayed moment instead of the live market.
    pub replay: Replay,
    /// What the feed says of the page's own account.
    pub account: AccountFeed,
}

/// The page's own account as the feed pushes it (`FeedRequest::Account`):
/// the socket's session cookie names the account, so after a log-in or
/// log-out the socket is opened again ([`AccountFeed::restart`]).
#[derive(Clone, Copy)]
pub struct AccountFeed {
    /// The last account message: `Some(None)` when the socket has no
    /// session (or it ended).
    pub latest: RwSignal<Option<Option<AccountView>>>,
    /// The last fill that arrived, for its notice.
    pub fill: RwSignal<Option<FillView>>,
    /// The account stream's position reached: a reconnect resumes there,
    /// so no fill is missed.
    pub position: RwSignal<Option<FeedPosition>>,
    /// Tells the open socket to close and open again.
    restart: StoredValue<Option<futures::channel::mpsc::UnboundedSender<()>>, LocalStorage>,
}

impl AccountFeed {
    fn new() -> AccountFeed {
        AccountFeed {
            latest: RwSignal::new(None),
            fill: RwSignal::new(None),
            position: RwSignal::new(None),
            restart: StoredValue::new_local(None),
        }
    }

    /// Opens the page's socket again, for another session (or none): the
    /// account followed starts over.
    pub fn restart(&self) {
        self.position.set(None);
        if let Some(tx) = self.restart.get_value() {
            let _ = tx.unbounded_send(());
        }
    }
}

impl MarketState {
    pub fn new(snapshot: MarketSnapshot) -> MarketState {
        MarketState {
            symbol: RwSignal::new(snapshot.symbol.clone()),
            trades: RwSignal::new(snapshot.trades.clone()),
            depth: RwSignal::new(snapshot.depth.clone()),
            ticker: RwSignal::new(snapshot.ticker.clone()),
            link: RwSignal::new(Link::Connecting),
            position: RwSignal::new(snapshot.position),
            received: RwSignal::new(0),
            chart: ChartHandle::new(snapshot.series),
            replay: Replay::default(),
            account: AccountFeed::new(),
        }
    }

    /// Folds one feed message in. Messages about another market than the
    /// one shown (left over from before a switch) are dropped.
    pub fn apply(&self, message: FeedMessage) {
        match message {
            FeedMessage::Snapshot(s) => {
                self.symbol.set(s.symbol);
                self.trades.set(s.trades);
                self.depth.set(s.depth);
                self.ticker.set(s.ticker);
                self.position.set(s.position);
                self.chart.reset(s.series);
            }
            FeedMessage::Trade {
                symbol,
                position,
                trade,
            } => {
                if symbol != self.symbol.get_untracked()
                    || Some(position) <= self.position.get_untracked()
                {
                    return;
                }
                self.position.set(Some(position));
                self.chart.push(&trade);
                self.trades.update(|t| {
                    t.insert(0, trade.into_value());
                    t.truncate(TAPE);
                });
                self.received.update(|n| *n += 1);
            }
            FeedMessage::Depth { symbol, depth } if symbol == self.symbol.get_untracked() => {
                self.depth.set(depth.into_value())
            }
            FeedMessage::Heartbeat {
                symbol,
                position,
                ticker,
            } if symbol == self.symbol.get_untracked() => {
                if position > self.position.get_untracked() {
                    self.position.set(position);
                }
                self.ticker.set(ticker.into_value());
            }
            FeedMessage::Account { view, position } => {
                self.account.position.set(position);
                self.account.latest.set(Some(view.map(|v| *v)));
            }
            // Changes follow the whole view on the same socket.
            FeedMessage::AccountChanged { changes, position } => {
                self.account.position.set(position);
                self.account.latest.update(|latest| {
                    if let Some(Some(view)) = latest {
                        view.apply(*changes);
                    }
                });
            }
            FeedMessage::Fill { position, fill }
                if Some(position) > self.account.position.get_untracked() =>
            {
                self.account.position.set(Some(position));
                self.account.fill.set(Some(*fill));
            }
            _ => {}
        }
    }
}

/// The header's live-link badge.
#[component]
pub fn LinkStatus(link: RwSignal<Link>) -> impl IntoView {
    let label = move || match link.get() {
        Link::Connecting => "Connecting",
        Link::Live => "Live",
        Link::Reconnecting => "Reconnecting",
    };
    view! {
        <div class="link-status" data-link=move || label().to_lowercase() role="status">
            <span class="dot" aria-hidden="true"></span>
            <span class="label">{label}</span>
        </div>
    }
}

/// The 24-hour ticker in the header.
#[component]
pub fn Ticker(state: MarketState) -> impl IntoView {
    let t = state.ticker;
    let num = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v}"));
    view! {
        <dl class="ticker" data-testid="ticker">
            <div><dt>"Last"</dt><dd class="last">{move || t.get().last.unwrap_or_else(|| "–".into())}</dd></div>
            <div><dt>"24h change"</dt>
                <dd class=move || match t.get().change_pct { Some(c) if c < 0.0 => "sell", Some(_) => "buy", None => "" }>
                    {move || t.get().change_pct.map_or("–".into(), |c| format!("{c:+.2}%"))}
                </dd></div>
            <div><dt>"24h high"</dt><dd>{move || num(t.get().high)}</dd></div>
            <div><dt>"24h low"</dt><dd>{move || num(t.get().low)}</dd></div>
            <div><dt>"24h volume"</dt><dd>{move || format!("{}", (t.get().volume * 1e8).round() / 1e8)}</dd></div>
        </dl>
    }
}

/// The recent-trades tape, newest first.
#[component]
pub fn Tape(state: MarketState) -> impl IntoView {
    boundary(view! {
        <div class="tape-scroll">
        <table class="data tape" data-testid="tape">
            <thead><tr><th>"Time"</th><th>"Price"</th><th>"Size"</th></tr></thead>
            <tbody>
                {move || state.replay.trades_or(state.trades).into_iter().map(|t| {
                    let time = crate::time_format::time_label(t.at_ms as f64, crate::candles::Interval::M1);
                    let seconds = format!("{time}:{:02}", t.at_ms / 1000 % 60);
                    view! {
                        <tr class=t.taker_side.clone() data-trade-id=t.trade_id.to_string()>
                            <td>{seconds}</td><td class="num price">{t.price}</td><td class="num">{t.quantity}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        </div>
        <p class="empty" hidden=move || !state.replay.trades_or(state.trades).is_empty()>"No trades yet."</p>
    })
}

/// A price a viewer picked in the book, for the order form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelPick {
    pub symbol: String,
    pub price: String,
}

/// The order book: asks above (best nearest the middle, the list
/// scrolling inside itself), the spread and last price between, bids
/// below; grouped by a chosen step of the market's tick. Clicking a
/// level's price (or pressing Enter on it) picks it for the order form.
#[component]
pub fn DepthBook(
    state: MarketState,
    tick_size: Signal<String>,
    pick: RwSignal<Option<LevelPick>>,
) -> impl IntoView {
    use crate::book_grouping::{BookSide, difference, group, steps};
    let step = RwSignal::new(String::new());
    // A new market has other steps: start again from its tick.
    Effect::new(move |_| step.set(tick_size.get()));
    // One copy of the shown depth per change, read by both sides, the
    // spread and the empty note.
    let shown = Memo::new(move |_| state.replay.depth_or(state.depth));
    let grouped = move |side: BookSide| {
        let step = step.get();
        shown.with(|depth| {
            let levels = match side {
                BookSide::Bids => &depth.bids,
                BookSide::Asks => &depth.asks,
            };
            group(levels, &step, side)
        })
    };
    let rows = move |levels: Vec<LevelView>, side: &'static str| {
        levels
            .into_iter()
            .map(|l| {
                let price = l.price.clone();
                let label = format!("Use price {}", l.price);
                let choose = move |_| {
                    pick.set(Some(LevelPick {
                        symbol: state.symbol.get_untracked(),
                        price: price.clone(),
                    }))
                };
                view! {
                    <tr class=side>
                        <td class="num price"><button type="button" class="level" aria-label=label on:click=choose>{l.price}</button></td>
                        <td class="num">{l.quantity}</td><td class="num">{l.cumulative}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    let spread = move || {
        shown.with(|d| {
            let (bid, ask) = (&d.bids.first()?.price, &d.asks.first()?.price);
            difference(ask, bid)
        })
    };
    let last = move || {
        let trades = state.replay.trades_or(state.trades);
        trades
            .first()
            .map(|t| (t.price.clone(), t.taker_side.clone()))
    };
    let head = || view! { <thead><tr><th>"Price"</th><th>"Size"</th><th>"Total"</th></tr></thead> };
    boundary(view! {
        <div class="book-tools">
            <label for="book-step">"Group"</label>
            <select id="book-step" data-testid="book-step" on:change=move |ev| step.set(event_target_value(&ev))>
                {move || steps(&tick_size.get()).into_iter().map(|s| {
                    let selected = s == step.get_untracked();
                    view! { <option value=s.clone() selected=selected>{s.clone()}</option> }
                }).collect_view()}
            </select>
        </div>
        <div class="book" data-testid="depth">
            <table class="data depth columns">{head()}</table>
            <div class="book-side asks-side">
                <table class="data depth">
                    <tbody class="asks">{move || rows(grouped(BookSide::Asks).into_iter().rev().collect(), "sell")}</tbody>
                </table>
            </div>
            <div class="spread-row" data-testid="spread">
                <span class=move || format!("last {}", last().map(|l| l.1).unwrap_or_default())>
                    {move || last().map_or("–".to_string(), |l| l.0)}
                </span>
                <span class="spread">"Spread " {move || spread().unwrap_or_else(|| "–".into())}</span>
            </div>
            <div class="book-side bids-side">
                <table class="data depth">
                    <tbody class="bids">{move || rows(grouped(BookSide::Bids), "buy")}</tbody>
                </table>
            </div>
        </div>
        <p class="empty" hidden=move || shown.with(|d| !(d.bids.is_empty() && d.asks.is_empty()))>
            "No resting orders."
        </p>
    })
}

/// The chart panel's body: the price chart, or the depth chart as a
/// second view of the book. Both stay mounted, so switching keeps the
/// price chart's canvas and everything drawn on it.
#[component]
pub fn ChartPanel(state: MarketState) -> impl IntoView {
    let depth = RwSignal::new(false);
    let pick = move |show_depth: bool| {
        depth.set(show_depth);
        if !show_depth {
            // They may have been laid out while hidden: fit them again.
            state.chart.refit();
            state.replay.chart.refit();
        }
    };
    let tab = move |label: &'static str, show_depth: bool| {
        view! {
            <button type="button" role="tab" class="secondary"
                aria-selected=move || (depth.get() == show_depth).to_string()
                on:click=move |_| pick(show_depth)>{label}</button>
        }
    };
    boundary(view! {
        <div class="chart-views" role="tablist" aria-label="Chart">
            {tab("Price", false)}
            {tab("Depth", true)}
        </div>
        <div class="chart-view" hidden=move || depth.get() || state.replay.active()>
            <PriceChart chart=state.chart symbol=state.symbol.into() />
        </div>
        <Show when=move || state.replay.active()>
            <div class="chart-view" data-testid="replay-chart" hidden=move || depth.get()>
                <PriceChart chart=state.replay.chart symbol=state.symbol.into() testid="replay-canvas" />
            </div>
        </Show>
        <div class="chart-view" hidden=move || !depth.get()>
            <DepthChart depth=Signal::derive(move || state.replay.depth_or(state.depth)) />
        </div>
    })
}

/// Keeps the page's feed open for its lifetime (browser only).
pub fn connect(state: MarketState) {
    #[cfg(feature = "hydrate")]
    browser::connect(state);
    #[cfg(not(feature = "hydrate"))]
    let _ = state;
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::*;
    use futures::channel::mpsc;
    use futures::{SinkExt, StreamExt};

    const FIRST_RETRY_MS: u64 = 250;
    const MAX_RETRY_MS: u64 = 8_000;

    type Requests = mpsc::Sender<Result<FeedRequest, ServerFnError>>;

    /// One socket at a time for the page's lifetime: reconnects with
    /// exponential backoff and resumes from the last positions received
    /// (the market's and the account's); a change of market is sent up the
    /// open socket; a restart (a new session) opens the next one at once.
    pub fn connect(state: MarketState) {
        use futures::future::{Either, select};
        let current = StoredValue::new_local(None::<Requests>);
        let (restart_tx, mut restart) = mpsc::unbounded::<()>();
        state.account.restart.set_value(Some(restart_tx));
        // A market switch: ask the open socket for the new market.
        Effect::new(move |previous: Option<String>| {
            let symbol = state.symbol.get();
            if previous.is_some_and(|p| p != symbol) {
                let sender = current.get_value();
                if let Some(mut tx) = sender {
                    leptos::task::spawn_local(async move {
                        let _ = tx.send(Ok(FeedRequest::Watch { symbol, from: None })).await;
                    });
                }
            }
            state.symbol.get_untracked()
        });
        leptos::task::spawn_local(async move {
            let mut retry_ms = FIRST_RETRY_MS;
            loop {
                let (mut tx, rx) = mpsc::channel(4);
                let watch = FeedRequest::Watch {
                    symbol: state.symbol.get_untracked(),
                    from: state.position.get_untracked(),
                };
                let _ = tx.send(Ok(watch)).await;
                let from = state.account.position.get_untracked();
                let _ = tx.send(Ok(FeedRequest::Account { from })).await;
                current.set_value(Some(tx));
                let mut restarted = false;
                if let Ok(mut messages) = market_feed(rx.into()).await {
                    loop {
                        match select(messages.next(), restart.next()).await {
                            Either::Left((Some(Ok(frame)), _)) => {
                                retry_ms = FIRST_RETRY_MS;
                                state.link.set(Link::Live);
                                for message in frame {
                                    state.apply(message);
                                }
                            }
                            Either::Left(_) => break,
                            Either::Right(_) => {
                                restarted = true;
                                break;
                            }
                        }
                    }
                }
                // Dropping both halves closes the socket.
                current.set_value(None);
                if restarted {
                    continue;
                }
                state.link.set(Link::Reconnecting);
                sleep_ms(retry_ms).await;
                retry_ms = (retry_ms * 2).min(MAX_RETRY_MS);
            }
        });
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
