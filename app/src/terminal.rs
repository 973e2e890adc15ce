//! The trading terminal: the one screen a trader or viewer works in.
//!
//! It lays out the header (exchange name, market selector, link status) and
//! the four work areas: chart, order book, recent trades and order entry.

use leptos::prelude::*;

use crate::chart::LiveChart;
use crate::live::{LinkStatus, use_server_clock};
use crate::trading::TraderPanel;

/// The markets a viewer can pick. Only BTC-USD is served until the matching
/// engine is wired into the server.
const MARKETS: &[&str] = &["BTC-USD"];

/// The trading terminal page.
#[component]
pub fn Terminal() -> impl IntoView {
    // Effects run only in the browser, so this flips once hydration is done;
    // end-to-end tests wait for the marker instead of guessing a delay.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let clock = use_server_clock();

    view! {
        <div class="terminal" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <h1 class="brand">"Satoshi Exchange"</h1>
                <label class="market-select">
                    <span class="visually-hidden">"Market"</span>
                    <select name="market">
                        {MARKETS
                            .iter()
                            .map(|m| view! { <option value=*m>{*m}</option> })
                            .collect_view()}
                    </select>
                </label>
                <LinkStatus clock />
            </header>
            <main class="workspace">
                <section class="panel chart-panel" aria-labelledby="chart-title">
                    <h2 id="chart-title">"Chart"</h2>
                    <LiveChart clock />
                </section>
                <section class="panel book-panel" aria-labelledby="book-title">
                    <h2 id="book-title">"Order book"</h2>
                    <p class="empty">"No resting orders."</p>
                </section>
                <section class="panel trades-panel" aria-labelledby="trades-title">
                    <h2 id="trades-title">"Trades"</h2>
                    <p class="empty">"No trades yet."</p>
                </section>
                <section class="panel entry-panel" aria-labelledby="entry-title">
                    <h2 id="entry-title">"Trade"</h2>
                    <TraderPanel />
                </section>
            </main>
        </div>
    }
}
