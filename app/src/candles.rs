//! Candles: trades gathered into open/high/low/close/volume per interval.
//!
//! Shared by the server (the first paint of every chart, the 24-hour
//! ticker) and the browser (each live trade updates the candles it falls
//! in), so both sides cut time the same way. Intervals with no trades get
//! no candle: the chart shows the gap rather than inventing prices.

use serde::{Deserialize, Serialize};

/// A chart interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl Interval {
    pub const ALL: [Interval; 4] = [Interval::M1, Interval::M5, Interval::H1, Interval::D1];

    pub fn millis(self) -> u64 {
        match self {
            Interval::M1 => 60_000,
            Interval::M5 => 300_000,
            Interval::H1 => 3_600_000,
            Interval::D1 => 86_400_000,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    pub fn from_label(label: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.label() == label)
    }

    /// The start of the interval a time falls in.
    pub fn start(self, at_ms: u64) -> u64 {
        at_ms - at_ms % self.millis()
    }
}

/// One interval's trades. Prices are for drawing; exact amounts live in
/// the trades themselves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub start_ms: u64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// A bounded series of candles of one interval, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub interval: Interval,
    pub candles: Vec<Candle>,
    pub capacity: usize,
}

/// What adding a trade did to a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The last candle changed.
    Updated,
    /// A new candle began.
    Added,
    /// The trade was older than the last candle (a replay): nothing changed.
    Ignored,
}

impl Series {
    pub fn new(interval: Interval, capacity: usize) -> Series {
        Series {
            interval,
            candles: Vec::new(),
            capacity,
        }
    }

    /// Adds one trade.
    pub fn add(&mut self, at_ms: u64, price: f64, quantity: f64) -> Change {
        let start = self.interval.start(at_ms);
        match self.candles.last_mut() {
            Some(c) if c.start_ms == start => {
                c.high = c.high.max(price);
                c.low = c.low.min(price);
                c.close = price;
                c.volume += quantity;
                Change::Updated
            }
            Some(c) if c.start_ms > start => Change::Ignored,
            _ => {
                if self.candles.len() == self.capacity {
                    self.candles.remove(0);
                }
                self.candles.push(Candle {
                    start_ms: start,
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    volume: quantity,
                });
                Change::Added
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_fold_into_their_intervals() {
        let mut s = Series::new(Interval::M1, 2);
        assert_eq!(s.add(60_000, 10.0, 1.0), Change::Added);
        assert_eq!(s.add(119_999, 12.0, 1.0), Change::Updated);
        assert_eq!(s.add(100_000, 9.0, 0.5), Change::Updated);
        assert_eq!(
            s.candles[0],
            Candle {
                start_ms: 60_000,
                open: 10.0,
                high: 12.0,
                low: 9.0,
                close: 9.0,
                volume: 2.5
            }
        );
        // No trade between 120 s and 300 s: no candles are invented.
        assert_eq!(s.add(300_000, 11.0, 1.0), Change::Added);
        assert_eq!(s.candles[1].start_ms, 300_000);
        assert_eq!(s.add(30_000, 1.0, 1.0), Change::Ignored);
        assert_eq!(s.add(360_000, 11.0, 1.0), Change::Added);
        assert_eq!(s.candles.len(), 2);
        assert_eq!(Interval::from_label("1h"), Some(Interval::H1));
    }
}
