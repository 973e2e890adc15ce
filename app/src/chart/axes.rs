//! Where a candle goes on the canvas: the data ranges of the last full draw
//! and the plot's pixels, and whether a new candle still fits them.

use crate::candles::{Candle, Interval};

/// Candles shown across the chart.
pub const VISIBLE: usize = 90;
/// Empty candle slots kept to the right, so new candles usually fit.
pub const HEADROOM: usize = 8;

/// The mapping of the last full draw: data ranges and the plot's pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axes {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub volume_max: f64,
    /// The price plot's pixel rectangle, in canvas pixels.
    pub plot_x: (i32, i32),
}

impl Axes {
    /// Axes that hold the given candles with some room to grow.
    pub fn around(candles: &[Candle], interval: Interval) -> Option<Axes> {
        let first = candles.first()?;
        let last = candles.last()?;
        let step = interval.millis() as f64;
        let x0 = first.start_ms as f64 - step;
        let x1 = last.start_ms as f64 + step * (HEADROOM as f64 + 1.0);
        let low = candles.iter().map(|c| c.low).fold(f64::MAX, f64::min);
        let high = candles.iter().map(|c| c.high).fold(f64::MIN, f64::max);
        let pad = ((high - low) * 0.08).max(high.abs() * 0.001).max(1e-9);
        let volume = candles.iter().map(|c| c.volume).fold(0.0, f64::max);
        Some(Axes {
            x: (x0, x1),
            y: (low - pad, high + pad),
            volume_max: (volume * 1.15).max(1e-12),
            plot_x: (0, 0),
        })
    }

    /// Whether a candle can be drawn without changing the axes.
    pub fn holds(&self, c: &Candle, interval: Interval) -> bool {
        let end = c.start_ms as f64 + interval.millis() as f64;
        c.start_ms as f64 >= self.x.0
            && end <= self.x.1
            && c.low >= self.y.0
            && c.high <= self.y.1
            && c.volume <= self.volume_max
    }
}
