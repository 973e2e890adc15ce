//! The trading terminal: the one screen a trader or viewer works in.
//!
//! It lays out the header (exchange name, market selector, 24-hour ticker,
//! link status) and the four work areas: chart, order book depth, recent
//! trades and the trader's panel. The market areas are rendered on the
//! server from a snapshot, so the first paint is never empty, and kept
//! live in the browser by the market feed. The trader's panel loads on its
//! own and never waits for market data.
//!
//! The snapshot and the list of markets are read synchronously from the
//! exchange while the server renders and carried in the page to the
//! browser (Leptos's `SharedValue`), so the market areas hydrate at once
//! with no suspense boundary around them: under one, the bundle would
//! carry a second, asynchronous copy of all their hydration code.

use leptos::prelude::*;

use crate::api::{MarketSnapshot, MarketView};
use crate::boundary::boundary;
use crate::codec::Json;
use crate::error::UserError;
use crate::live_market::{
    ChartPanel, DepthBook, LevelPick, LinkStatus, MarketState, Tape, Ticker, connect,
};
use crate::time_machine::{ReplayBar, ReplayButton, linked_moment};
use crate::trader_panel::TraderPanel;

/// The market a page opens on.
pub const DEFAULT_MARKET: &str = "BTC-USD";

/// What the page paints first: the default market's snapshot and every
/// market (read on the server; the browser takes them from the page).
fn first_paint() -> Result<(MarketSnapshot, Vec<MarketView>), UserError> {
    #[cfg(feature = "ssr")]
    {
        use crate::server::ExchangeError;
        let exchange = crate::site::context::exchange()?;
        let snapshot = exchange
            .snapshot(DEFAULT_MARKET)
            .ok_or_else(|| ExchangeError::UnknownMarket(DEFAULT_MARKET.into()))?;
        Ok((snapshot, exchange.markets()))
    }
    #[cfg(not(feature = "ssr"))]
    Err(UserError::new(
        "the market comes with the page from the server: reload the page",
    ))
}

/// A market's data as of now, as the page paints it first.
#[server(endpoint = "market_page")]
pub async fn market_page(symbol: String) -> Result<MarketSnapshot, UserError> {
    let exchange = crate::site::context::exchange()?;
    exchange
        .snapshot(&symbol)
        .ok_or_else(|| crate::server::ExchangeError::UnknownMarket(symbol).into())
}

/// The work areas, one at a time behind tabs on a phone; side by side (and
/// the tabs hidden) on a wider screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Chart,
    Book,
    Trades,
    Trade,
}

impl Area {
    const ALL: [Area; 4] = [Area::Chart, Area::Book, Area::Trades, Area::Trade];

    fn label(self) -> &'static str {
        match self {
            Area::Chart => "Chart",
            Area::Book => "Book",
            Area::Trades => "Trades",
            Area::Trade => "Trade",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Area::Chart => "area-chart",
            Area::Book => "area-book",
            Area::Trades => "area-trades",
            Area::Trade => "area-trade",
        }
    }
}

/// What the page's areas share: the tab shown on a phone and the price
/// last picked in the book.
#[derive(Clone, Copy)]
struct Shared {
    markets: StoredValue<Vec<MarketView>>,
    area: RwSignal<Area>,
    pick: RwSignal<Option<LevelPick>>,
}

/// The trading terminal page.
#[component]
pub fn Terminal() -> impl IntoView {
    // Effects run only in the browser, so this flips once hydration is done;
    // end-to-end tests wait for the marker instead of guessing a delay.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let first = SharedValue::<_, Json>::new_with_encoding(first_paint).into_inner();
    let area = RwSignal::new(Area::Chart);
    let pick = RwSignal::new(None::<LevelPick>);
    // A picked price is for the order form: on a phone, show it.
    Effect::new(move |_| {
        if pick.get().is_some() {
            area.set(Area::Trade);
        }
    });
    let (state, markets, failed) = match first {
        Ok((snapshot, markets)) => {
            let state = MarketState::new(snapshot);
            // The trade panel follows the account over the page's feed.
            provide_context(state.account);
            connect(state);
            (Some(state), markets, None)
        }
        Err(e) => (None, Vec::new(), Some(e.message)),
    };
    let shared = Shared {
        markets: StoredValue::new(markets),
        area,
        pick,
    };

    boundary(view! {
        <div class="terminal" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <h1 class="brand">"Satoshi Exchange"</h1>
                {state.map(|state| header(state, shared))}
            </header>
            {state.map(|state| replay_bar(state, shared))}
            <nav class="area-tabs" role="tablist" aria-label="Areas">
                {Area::ALL.into_iter().map(|a| view! {
                    <button type="button" role="tab" class="secondary" aria-controls=a.id()
                        aria-selected=move || (area.get() == a).to_string()
                        on:click=move |_| area.set(a)>{a.label()}</button>
                }).collect_view()}
            </nav>
            <main class="workspace">
                {state.map(|state| panels(state, shared))}
                {failed.map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
                <section class="panel entry-panel" id=Area::Trade.id() data-shown=shown(area, Area::Trade)
                    aria-labelledby="entry-title">
                    <h2 id="entry-title">"Trade"</h2>
                    <TraderPanel pick markets=shared.markets />
                </section>
            </main>
        </div>
    })
}

/// Whether an area is the one the tabs show (on a phone).
fn shown(area: RwSignal<Area>, this: Area) -> impl Fn() -> String + Copy {
    move || (area.get() == this).to_string()
}

/// The time machine's bar under the header; a link to a moment opens it.
fn replay_bar(state: MarketState, _: Shared) -> impl IntoView {
    let symbol = Signal::from(state.symbol);
    Effect::new(move |_| {
        if let Some((market, events)) = linked_moment() {
            state.symbol.set(market.clone());
            state.replay.go(market, Some(events), None);
        }
    });
    view! { <ReplayBar replay=state.replay symbol /> }
}

fn header(state: MarketState, Shared { markets, .. }: Shared) -> impl IntoView {
    boundary(view! {
        <label class="market-select">
            <span class="visually-hidden">"Market"</span>
            <select name="market" data-testid="market-select" prop:value=move || state.symbol.get()
                on:change=move |ev| state.symbol.set(event_target_value(&ev))>
                {markets.get_value().into_iter().map(|m| {
                    let selected = m.symbol == state.symbol.get_untracked();
                    view! { <option value=m.symbol.clone() selected=selected>{m.symbol.clone()}</option> }
                }).collect_view()}
            </select>
        </label>
        <Ticker state />
        <ReplayButton replay=state.replay symbol=state.symbol.into() />
        <LinkStatus link=state.link />
    })
}

fn panels(state: MarketState, shared: Shared) -> impl IntoView {
    let Shared {
        markets,
        area,
        pick,
    } = shared;
    let tick_size = Signal::derive(move || {
        let symbol = state.symbol.get();
        markets.with_value(|all| {
            all.iter()
                .find(|m| m.symbol == symbol)
                .map(|m| m.tick_size.clone())
                .unwrap_or_default()
        })
    });
    boundary(view! {
        <section class="panel chart-panel" id=Area::Chart.id() data-shown=shown(area, Area::Chart)
            aria-labelledby="chart-title">
            <h2 id="chart-title">"Chart"</h2>
            <ChartPanel state />
        </section>
        <section class="panel book-panel" id=Area::Book.id() data-shown=shown(area, Area::Book)
            aria-labelledby="book-title">
            <h2 id="book-title">"Order book"</h2>
            <DepthBook state tick_size pick />
        </section>
        <section class="panel trades-panel" id=Area::Trades.id() data-shown=shown(area, Area::Trades)
            aria-labelledby="trades-title">
            <h2 id="trades-title">"Trades"</h2>
            <Tape state />
        </section>
    })
}
