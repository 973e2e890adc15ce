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
//! The view can be zoomed and panned over the whole history; when it
//! reaches back past the oldest candle loaded, the panel fetches older ones
//! from the `candles_before` server function and the handle puts them in
//! front. The last price's line and label are HTML over the canvas too, so
//! a trade moves them without painting.
//!
//! One concern per file: [`axes`] maps data to the plot and holds the
//! [`View`] (zoom and pan), [`handle`] holds the data and decides what a
//! trade needs drawn, `draw` paints with plotters (browser only),
//! [`gestures`] reads the pointer, [`crate::time_format`] formats the time axis,
//! [`panel`] is the component, and `bench` times it all in a real browser.

pub mod axes;
#[cfg(feature = "bench-chart")]
pub mod bench;
#[cfg(feature = "hydrate")]
mod draw;
pub mod gestures;
pub mod handle;
pub mod panel;

pub use axes::{Axes, HEADROOM, VISIBLE, View};
pub use handle::{AVERAGES, ChartHandle, ChartState, Drawn, Overlay, Style};
pub use panel::PriceChart;
