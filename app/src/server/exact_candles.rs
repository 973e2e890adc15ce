//! Candles in exact decimals, for programs: every trade's price and
//! quantity summed as `Decimal`, never as floating point. One candle per
//! minute that had a trade is kept (about 1,440 a day of trading); a
//! coarser interval and the 24-hour ticker are folded from those minutes,
//! so a request costs at most the minutes it covers, never the trades.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::candles::Interval;

const MINUTE_MS: u64 = 60_000;

/// One candle: the trades that started in `[start_ms, start_ms + its
/// interval)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactCandle {
    pub start_ms: u64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Base quantity traded.
    pub volume: Decimal,
    /// Quote amount traded: the sum of price × quantity.
    pub quote_volume: Decimal,
    pub trades: u64,
}

impl ExactCandle {
    fn new(start_ms: u64, price: Decimal, quantity: Decimal) -> ExactCandle {
        ExactCandle {
            start_ms,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: quantity,
            quote_volume: price * quantity,
            trades: 1,
        }
    }

    /// This candle followed by a later one.
    fn merge(&mut self, later: &ExactCandle) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume += later.volume;
        self.quote_volume += later.quote_volume;
        self.trades += later.trades;
    }
}

/// A market's minutes that had trades, oldest first. Written down as
/// they are in a start's snapshot of the market data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MinuteCandles {
    minutes: Vec<ExactCandle>,
}

impl MinuteCandles {
    /// Adds a trade; trades come in the log's order.
    pub fn add(&mut self, at_ms: u64, price: Decimal, quantity: Decimal) {
        let start = at_ms - at_ms % MINUTE_MS;
        match self.minutes.last_mut() {
            Some(last) if last.start_ms >= start => {
                last.merge(&ExactCandle::new(last.start_ms, price, quantity));
            }
            _ => self.minutes.push(ExactCandle::new(start, price, quantity)),
        }
    }

    /// The candles of `interval` that start in `[start_ms, end_ms]`, oldest
    /// first: the first `limit` from `start_ms` when it is given, else the
    /// newest `limit` up to `end_ms`. Only intervals with trades have one.
    pub fn candles(
        &self,
        interval: Interval,
        start_ms: Option<u64>,
        end_ms: Option<u64>,
        limit: usize,
    ) -> Vec<ExactCandle> {
        let from = start_ms.map_or(0, |s| interval.start(s));
        let first = self.minutes.partition_point(|m| m.start_ms < from);
        let last = end_ms.map_or(self.minutes.len(), |e| {
            self.minutes
                .partition_point(|m| interval.start(m.start_ms) <= e)
        });
        let minutes = &self.minutes[first..last.max(first)];
        let mut out: Vec<ExactCandle> = Vec::new();
        // Folding newest first when the newest are wanted stops at `limit`.
        let fold = |out: &mut Vec<ExactCandle>, m: &ExactCandle, forwards: bool| {
            let start = interval.start(m.start_ms);
            match out.last_mut() {
                Some(c) if c.start_ms == start => {
                    if forwards {
                        c.merge(m);
                    } else {
                        let mut earlier = ExactCandle {
                            start_ms: start,
                            ..*m
                        };
                        earlier.merge(c);
                        *c = earlier;
                    }
                }
                _ => out.push(ExactCandle {
                    start_ms: start,
                    ..*m
                }),
            }
        };
        if start_ms.is_some() {
            for m in minutes {
                if out.len() == limit
                    && out
                        .last()
                        .is_some_and(|c| c.start_ms != interval.start(m.start_ms))
                {
                    break;
                }
                fold(&mut out, m, true);
            }
        } else {
            for m in minutes.iter().rev() {
                if out.len() == limit
                    && out
                        .last()
                        .is_some_and(|c| c.start_ms != interval.start(m.start_ms))
                {
                    break;
                }
                fold(&mut out, m, false);
            }
            out.reverse();
        }
        out
    }

    /// The minutes of the 24 hours before `now_ms` as one candle (its
    /// start is the first such minute's): none without a trade in them.
    pub fn day(&self, now_ms: u64) -> Option<ExactCandle> {
        let since = (now_ms - now_ms % MINUTE_MS).saturating_sub(24 * 60 * MINUTE_MS);
        let first = self.minutes.partition_point(|m| m.start_ms <= since);
        let mut minutes = self.minutes[first..].iter();
        let mut day = *minutes.next()?;
        for m in minutes {
            day.merge(m);
        }
        Some(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn candles_are_exact_and_coarser_ones_fold_from_the_minutes() {
        let mut m = MinuteCandles::default();
        let t0 = 1_700_000_040_000 - 1_700_000_040_000 % 300_000; // a 5-minute boundary
        // 0.1 + 0.2 is 0.3 here, not 0.30000000000000004.
        m.add(t0, d("100.5"), d("0.1"));
        m.add(t0 + 1_000, d("101"), d("0.2"));
        m.add(t0 + 61_000, d("99"), d("0.7"));
        m.add(t0 + 301_000, d("98"), d("1"));
        let minutes = m.candles(Interval::M1, None, None, 10);
        assert_eq!(minutes.len(), 3);
        assert_eq!(minutes[0].volume, d("0.3"));
        assert_eq!(minutes[0].quote_volume, d("30.25"));
        let fives = m.candles(Interval::M5, None, None, 10);
        assert_eq!(fives.len(), 2);
        let f = fives[0];
        assert_eq!(
            (f.open, f.high, f.low, f.close),
            (d("100.5"), d("101"), d("99"), d("99"))
        );
        assert_eq!((f.volume, f.trades), (d("1.0"), 3));
        // The newest one, or the first from a start.
        assert_eq!(
            m.candles(Interval::M5, None, None, 1)[0].start_ms,
            t0 + 300_000
        );
        assert_eq!(m.candles(Interval::M5, Some(t0), None, 1)[0], f);
        assert_eq!(
            m.candles(Interval::M1, None, Some(t0 + 60_000), 10).len(),
            2
        );
        let day = m.day(t0 + 400_000).unwrap();
        assert_eq!(
            (day.open, day.close, day.volume, day.trades),
            (d("100.5"), d("98"), d("2.0"), 4)
        );
        assert_eq!(m.day(t0 + 2 * 86_400_000), None);
    }
}
