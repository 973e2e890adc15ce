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
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
    #[serde(rename = "1w")]
    W1,
}

/// Milliseconds from the Unix epoch (a Thursday) to the Monday after it:
/// weeks start on Monday, 00:00 UTC, as on other exchanges.
const FIRST_MONDAY_MS: u64 = 4 * 86_400_000;

impl Interval {
    pub const ALL: [Interval; 7] = [
        Interval::M1,
        Interval::M5,
        Interval::M15,
        Interval::H1,
        Interval::H4,
        Interval::D1,
        Interval::W1,
    ];

    pub fn millis(self) -> u64 {
        match self {
            Interval::M1 => 60_000,
            Interval::M5 => 300_000,
            Interval::M15 => 900_000,
            Interval::H1 => 3_600_000,
            Interval::H4 => 14_400_000,
            Interval::D1 => 86_400_000,
            Interval::W1 => 604_800_000,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::M15 => "15m",
            Interval::H1 => "1h",
            Interval::H4 => "4h",
            Interval::D1 => "1d",
            Interval::W1 => "1w",
        }
    }

    pub fn from_label(label: &str) -> Option<Interval> {
        Interval::ALL.into_iter().find(|i| i.label() == label)
    }

    /// The start of the interval a time falls in (UTC; a week from Monday).
    pub fn start(self, at_ms: u64) -> u64 {
        let offset = match self {
            Interval::W1 => self.millis() - FIRST_MONDAY_MS,
            _ => 0,
        };
        let shifted = at_ms + offset;
        (shifted - shifted % self.millis()).saturating_sub(offset)
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

    /// Puts older candles (oldest first) before the first one held; those
    /// not older than it are left out. The series grows to hold them.
    pub fn prepend(&mut self, older: &[Candle]) -> usize {
        let first = self.candles.first().map_or(u64::MAX, |c| c.start_ms);
        let keep = older.partition_point(|c| c.start_ms < first);
        self.candles.splice(0..0, older[..keep].iter().copied());
        self.capacity = self.capacity.max(self.candles.len());
        keep
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
        // Older candles go in front, and the series keeps them all.
        let older = [
            Candle {
                start_ms: 0,
                ..s.candles[0]
            },
            s.candles[0],
        ];
        assert_eq!(s.prepend(&older), 1);
        assert_eq!(s.candles.len(), 3);
        assert_eq!(s.candles[0].start_ms, 0);
        assert_eq!(s.add(420_000, 11.0, 1.0), Change::Added);
        assert_eq!(s.candles.len(), 3);
        assert_eq!(s.candles[0].start_ms, 300_000);
    }

    #[test]
    fn every_interval_cuts_time_on_its_own_boundaries() {
        // 2026-12-02 (a Wednesday) 14:41:07.5 UTC.
        let at = 1_796_222_467_500;
        let day = 1_796_169_600_000;
        assert_eq!(Interval::M15.start(at), day + 14 * 3_600_000 + 30 * 60_000);
        assert_eq!(Interval::H4.start(at), day + 12 * 3_600_000);
        assert_eq!(Interval::D1.start(at), day);
        // The week began on Monday 2026-11-30.
        assert_eq!(Interval::W1.start(at), day - 2 * 86_400_000);
        assert_eq!(
            Interval::W1.start(day - 2 * 86_400_000),
            day - 2 * 86_400_000
        );
        assert_eq!(
            Interval::W1.start(day - 2 * 86_400_000 - 1),
            day - 9 * 86_400_000
        );
        for i in Interval::ALL {
            assert_eq!(Interval::from_label(i.label()), Some(i));
            assert_eq!(i.start(i.start(at)), i.start(at));
            assert!(i.start(at) <= at && at - i.start(at) < i.millis());
        }
    }
}
