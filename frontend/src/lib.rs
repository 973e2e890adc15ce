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

/// Times the chart: `redraws` full redraws, as many after a zoom or pan,
/// and `appends` live trades over `points` one-minute candles. Returns
/// `[scheduled, differing, redraws..., zoomed..., appends...]`: the pushes
/// that needed a full redraw, the canvas bytes a full redraw after the
/// appends changed, then milliseconds.
#[cfg(feature = "bench-chart")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn chart_bench(
    canvas: web_sys::HtmlCanvasElement,
    points: usize,
    redraws: usize,
    appends: usize,
    line: bool,
    flush: bool,
) -> Vec<f64> {
    use app::chart::{Style, bench};
    let style = if line { Style::Line } else { Style::Candles };
    let t = bench::run(canvas, points, redraws, appends, style, flush);
    [f64::from(t.scheduled), f64::from(t.differing)]
        .into_iter()
        .chain(t.redraw_ms)
        .chain(t.zoomed_ms)
        .chain(t.append_ms)
        .collect()
}
