//! The browser entry point of the exchange.
//!
//! This crate owns nothing but the moment the WASM module starts: it installs
//! a panic hook that reports to the browser console and hydrates the page that
//! the server rendered from `app`. Everything the user sees lives in `app`, so
//! the server and the browser render from one component tree.

/// Called by the script that cargo-leptos injects into every page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
