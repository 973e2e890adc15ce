//! The HTML documents the server sends: the trading terminal, and the page
//! for an address the exchange does not have.
//!
//! The exchange is one page, so there is no client-side router: for its one
//! route it cost about an eighth of the WASM bundle (the router, and every
//! view below it compiled once more to be type-erased). The server answers
//! other addresses with [`not_found`], which needs no WASM at all.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};

use crate::terminal::Terminal;

/// The full HTML document the server streams for the terminal.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <DocumentMeta />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// What every document's head starts with.
#[component]
fn DocumentMeta() -> impl IntoView {
    view! {
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="dark" />
    }
}

/// The application root: stylesheet, title and the terminal.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/exchange.css" />
        <Title text="Satoshi Exchange" />
        <Terminal />
    }
}

/// The document for any other address (sent with status 404): plain HTML
/// that leads back to the terminal, with nothing to hydrate.
#[cfg(feature = "ssr")]
pub fn not_found(_: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <DocumentMeta />
                <title>"Page not found · Satoshi Exchange"</title>
                <link rel="stylesheet" href="/pkg/exchange.css" />
            </head>
            <body>
                <main class="not-found">
                    <h1>"Page not found."</h1>
                    <p>
                        <a href="/">"Go to the trading terminal"</a>
                    </p>
                </main>
            </body>
        </html>
    }
}
