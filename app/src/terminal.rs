//! The trading terminal: the one screen a trader or viewer works in.
//!
//! It lays out the header (exchange name, market selector, 24-hour ticker,
//! link status) and the four work areas: chart, order book depth, recent
//! trades and the trader's panel. The market areas are rendered on the
//! server from a snapshot, so the first paint is never empty, and kept
//! live in the browser by the market feed. The trader's panel loads on its
//! own and never waits for market data.

use leptos::prelude::*;

use crate::api::MarketSnapshot;
use crate::codec::Json;
use crate::error::UserError;
use crate::live_market::{ChartPanel, DepthBook, LinkStatus, MarketState, Tape, Ticker, connect};
use crate::trading::{Markets, TraderPanel, list_markets};

/// The market a page opens on.
pub const DEFAULT_MARKET: &str = "BTC-USD";

/// The market page's data as of now, for the first paint.
#[server(endpoint = "market_page")]
pub async fn market_page(symbol: String) -> Result<MarketSnapshot, UserError> {
    let exchange = crate::server::context::exchange()?;
    exchange
        .snapshot(&symbol)
        .ok_or_else(|| UserError::new(format!("there is no market {symbol}")))
}

/// The trading terminal page.
#[component]
pub fn Terminal() -> impl IntoView {
    // Effects run only in the browser, so this flips once hydration is done;
    // end-to-end tests wait for the marker instead of guessing a delay.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let snapshot = Resource::<_, Json>::new_with_options(
        || (),
        |_| market_page(DEFAULT_MARKET.to_string()),
        false,
    );
    let markets = Resource::<_, Json>::new_with_options(|| (), |_| list_markets(), false);
    // Both market areas share one state (and one feed), made from the
    // snapshot by whichever renders first.
    let shared = StoredValue::new(None::<MarketState>);
    let state_of = move |snapshot: MarketSnapshot| {
        shared.get_value().unwrap_or_else(|| {
            let state = MarketState::new(snapshot);
            connect(state);
            shared.set_value(Some(state));
            state
        })
    };
    let with_state = move |render: fn(MarketState, Markets) -> AnyView| {
        move || {
            snapshot.get().map(|result| match result {
                Ok(s) => render(state_of(s), markets),
                Err(e) => view! { <p class="form-error" role="alert">{e.message}</p> }.into_any(),
            })
        }
    };

    view! {
        <div class="terminal" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <h1 class="brand">"Satoshi Exchange"</h1>
                <Suspense fallback=|| ()>{with_state(header)}</Suspense>
            </header>
            <main class="workspace">
                <Suspense fallback=|| view! { <p class="empty">"Loading the market…"</p> }>
                    {with_state(panels)}
                </Suspense>
                <section class="panel entry-panel" aria-labelledby="entry-title">
                    <h2 id="entry-title">"Trade"</h2>
                    <TraderPanel />
                </section>
            </main>
        </div>
    }
}

fn header(state: MarketState, markets: Markets) -> AnyView {
    view! {
        <label class="market-select">
            <span class="visually-hidden">"Market"</span>
            <select name="market" data-testid="market-select"
                on:change=move |ev| state.symbol.set(event_target_value(&ev))>
                {move || markets.get().and_then(Result::ok).unwrap_or_default().into_iter().map(|m| {
                    let selected = m.symbol == state.symbol.get_untracked();
                    view! { <option value=m.symbol.clone() selected=selected>{m.symbol.clone()}</option> }
                }).collect_view()}
            </select>
        </label>
        <Ticker state />
        <LinkStatus link=state.link />
    }
    .into_any()
}

fn panels(state: MarketState, _: Markets) -> AnyView {
    view! {
        <section class="panel chart-panel" aria-labelledby="chart-title">
            <h2 id="chart-title">"Chart"</h2>
            <ChartPanel state />
        </section>
        <section class="panel book-panel" aria-labelledby="book-title">
            <h2 id="book-title">"Order book"</h2>
            <DepthBook state />
        </section>
        <section class="panel trades-panel" aria-labelledby="trades-title">
            <h2 id="trades-title">"Trades"</h2>
            <Tape state />
        </section>
    }
    .into_any()
}
