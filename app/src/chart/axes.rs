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
    /// Axes that hold the given candles with some room to grow. The time
    /// axis is always [`VISIBLE`] candles wide and ends [`HEADROOM`] slots
    /// after the latest, so the latest sits near the right edge however
    /// few candles a young market has (older ones come in from the left).
    pub fn around(candles: &[Candle], interval: Interval) -> Option<Axes> {
        let last = candles.last()?;
        let step = interval.millis() as f64;
        let x1 = last.start_ms as f64 + step * (HEADROOM as f64 + 1.0);
        let x0 = x1 - step * (VISIBLE + HEADROOM + 1) as f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(start_ms: u64) -> Candle {
        Candle {
            start_ms,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 1.0,
        }
    }

    /// Where a candle's start falls across the time axis, 0 to 1.
    fn across(axes: &Axes, c: &Candle) -> f64 {
        (c.start_ms as f64 - axes.x.0) / (axes.x.1 - axes.x.0)
    }

    #[test]
    fn the_latest_candle_sits_at_the_right_however_few_there_are() {
        let minute = Interval::M1.millis();
        let one = [candle(100 * minute)];
        let axes = Axes::around(&one, Interval::M1).unwrap();
        let right = across(&axes, &one[0]);
        assert!(right > 0.85 && right < 1.0, "{right}");
        assert!(axes.holds(&one[0], Interval::M1));
        // A full chart: the same place for the latest, the first of the
        // VISIBLE at the left edge, and the next candle still fits.
        let full: Vec<Candle> = (0..VISIBLE as u64).map(|i| candle(i * minute)).collect();
        let axes = Axes::around(&full, Interval::M1).unwrap();
        assert!((across(&axes, full.last().unwrap()) - right).abs() < 1e-9);
        assert!(full.iter().all(|c| axes.holds(c, Interval::M1)));
        assert!(axes.holds(&candle(VISIBLE as u64 * minute), Interval::M1));
    }
}
