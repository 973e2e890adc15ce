//! The price chart: candles (or a line) with volume bars, drawn by plotters
//! from WASM on a `<canvas>`.
//!
//! The component renders once. The chart's data and drawing state live
//! outside the reactive tree in a [`ChartHandle`]: the live feed pushes each
//! trade into it, and the handle draws just the candle that changed onto the
//! existing picture. Only when the axes must change (a candle outside the
//! drawn time or price range, another interval or style, a new market, a
//! resize) is the whole canvas redrawn, at most once per animation frame
//! however many trades arrive. The canvas is sized in device pixels, so it
//! is sharp on high-DPI screens. A crosshair and tooltip follow the pointer
//! as plain HTML over the canvas, without touching the picture.
//!
//! One concern per file: [`axes`] maps data to the plot, [`handle`] holds
//! the data and decides what a trade needs drawn, `draw` paints with
//! plotters (browser only), [`labels`] formats the time axis, [`panel`] is
//! the component, and `bench` times it all in a real browser.

pub mod axes;
#[cfg(feature = "bench-chart")]
pub mod bench;
#[cfg(feature = "hydrate")]
mod draw;
pub mod handle;
pub mod labels;
pub mod panel;

pub use axes::{Axes, HEADROOM, VISIBLE};
pub use handle::{ChartHandle, ChartState, Drawn, Style};
pub use labels::time_label;
pub use panel::PriceChart;
