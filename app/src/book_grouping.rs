//! Grouping the order book by price, in the browser: the levels the feed
//! sends are merged into buckets of a chosen step (0.01, 0.1, 1, 10 for
//! BTC-USD), bids rounded down and asks rounded up, so a bucket never
//! shows a price better than any order in it (the way exchanges group).
//!
//! Prices and sizes arrive as exact decimal text and are summed exactly
//! here with integers of a common scale: the browser never adds floats
//! where a trader reads an amount. `rust_decimal` would do the same but
//! costs the web bundle its code; these few lines are all the book needs.

use crate::api::LevelView;

/// A decimal read exactly from its text: `units` × 10^-`scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact {
    pub units: i128,
    pub scale: u32,
}

/// The most digits after the point a price or size may have here.
const MAX_SCALE: u32 = 18;

impl Exact {
    /// Reads "123", "-0.05", "30000.10"; anything else is `None`.
    pub fn parse(text: &str) -> Option<Exact> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let scale = u32::try_from(fraction.len())
            .ok()
            .filter(|&s| s <= MAX_SCALE)?;
        let units: i128 = format!("{whole}{fraction}").parse().ok()?;
        Some(Exact {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// The same number with `scale` digits after the point (`scale` must
    /// not be smaller than the number's own).
    fn at(self, scale: u32) -> Option<i128> {
        self.units
            .checked_mul(10i128.checked_pow(scale - self.scale)?)
    }

    /// The shortest text of `units` × 10^-`scale`: no trailing zeros.
    pub fn text(units: i128, scale: u32) -> String {
        let digits = units.unsigned_abs().to_string();
        let scale = scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        let fraction = fraction.trim_end_matches('0');
        let sign = if units < 0 { "-" } else { "" };
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction}")
        }
    }
}

/// `a - b` as text, exactly; `None` when either is not a decimal.
pub fn difference(a: &str, b: &str) -> Option<String> {
    let (a, b) = (Exact::parse(a)?, Exact::parse(b)?);
    let scale = a.scale.max(b.scale);
    Some(Exact::text(a.at(scale)? - b.at(scale)?, scale))
}

/// Which side of the book levels are on: it decides which way a price
/// rounds to its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookSide {
    Bids,
    Asks,
}

/// The steps a market's book can be grouped by: its tick and three
/// coarser powers of ten.
pub fn steps(tick_size: &str) -> Vec<String> {
    let Some(tick) = Exact::parse(tick_size).filter(|t| t.units > 0) else {
        return Vec::new();
    };
    (0..4u32)
        .filter_map(|power| {
            let units = tick.units.checked_mul(10i128.pow(power))?;
            Some(Exact::text(units, tick.scale))
        })
        .collect()
}

/// The levels (best first) merged into buckets of `step`, best first, with
/// sizes and running totals summed exactly. Levels whose text does not
/// read as a decimal are kept as they are rather than dropped, so the book
/// never hides an order; so is everything when the step is not positive.
pub fn group(levels: &[LevelView], step: &str, side: BookSide) -> Vec<LevelView> {
    let Some(step) = Exact::parse(step).filter(|s| s.units > 0) else {
        return levels.to_vec();
    };
    let read: Option<Vec<(Exact, Exact)>> = levels
        .iter()
        .map(|l| Some((Exact::parse(&l.price)?, Exact::parse(&l.quantity)?)))
        .collect();
    let Some(read) = read else {
        return levels.to_vec();
    };
    let price_scale = read.iter().map(|(p, _)| p.scale).fold(step.scale, u32::max);
    let size_scale = read.iter().map(|(_, q)| q.scale).max().unwrap_or(0);
    let Some(step_units) = step.at(price_scale) else {
        return levels.to_vec();
    };
    let mut buckets: Vec<(i128, i128)> = Vec::new();
    for (price, quantity) in read {
        let (Some(p), Some(q)) = (price.at(price_scale), quantity.at(size_scale)) else {
            return levels.to_vec();
        };
        let down = p.div_euclid(step_units) * step_units;
        let bucket = match side {
            BookSide::Asks if down != p => down + step_units,
            _ => down,
        };
        match buckets.last_mut() {
            Some((b, size)) if *b == bucket => *size += q,
            _ => buckets.push((bucket, q)),
        }
    }
    let mut total = 0i128;
    buckets
        .into_iter()
        .map(|(price, size)| {
            total += size;
            LevelView {
                price: Exact::text(price, price_scale),
                quantity: Exact::text(size, size_scale),
                cumulative: Exact::text(total, size_scale),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(price: &str, quantity: &str) -> LevelView {
        LevelView {
            price: price.into(),
            quantity: quantity.into(),
            cumulative: String::new(),
        }
    }

    fn shown(levels: &[LevelView]) -> Vec<(&str, &str, &str)> {
        levels
            .iter()
            .map(|l| (&l.price[..], &l.quantity[..], &l.cumulative[..]))
            .collect()
    }

    #[test]
    fn bids_round_down_and_asks_round_up_with_exact_sums() {
        let bids = [
            level("30000.05", "0.1"),
            level("30000.01", "0.2"),
            level("29999.99", "0.00000001"),
        ];
        assert_eq!(
            shown(&group(&bids, "0.1", BookSide::Bids)),
            [
                ("30000", "0.3", "0.3"),
                ("29999.9", "0.00000001", "0.30000001")
            ]
        );
        let asks = [
            level("30000.01", "0.1"),
            level("30000.1", "0.2"),
            level("30001", "1"),
        ];
        assert_eq!(
            shown(&group(&asks, "1", BookSide::Asks)),
            [("30001", "1.3", "1.3")]
        );
        assert_eq!(
            shown(&group(&asks, "0.1", BookSide::Asks)),
            [("30000.1", "0.3", "0.3"), ("30001", "1", "1.3")]
        );
        // The tick itself changes nothing but the totals, which it works out.
        assert_eq!(
            shown(&group(&asks, "0.01", BookSide::Asks)),
            [
                ("30000.01", "0.1", "0.1"),
                ("30000.1", "0.2", "0.3"),
                ("30001", "1", "1.3")
            ]
        );
    }

    #[test]
    fn unreadable_levels_or_steps_are_shown_as_they_came() {
        let odd = [level("30000", "1"), level("n/a", "2")];
        assert_eq!(group(&odd, "10", BookSide::Bids), odd.to_vec());
        let fine = [level("30000", "1")];
        assert_eq!(group(&fine, "0", BookSide::Bids), fine.to_vec());
        assert_eq!(group(&fine, "ten", BookSide::Bids), fine.to_vec());
    }

    #[test]
    fn steps_follow_the_tick_and_differences_are_exact() {
        assert_eq!(steps("0.01"), ["0.01", "0.1", "1", "10"]);
        assert_eq!(steps("5"), ["5", "50", "500", "5000"]);
        assert!(steps("0").is_empty() && steps("x").is_empty());
        assert_eq!(difference("30000.1", "29999.95").as_deref(), Some("0.15"));
        assert_eq!(difference("1", "1.5").as_deref(), Some("-0.5"));
        assert_eq!(
            Exact::parse("-0.05"),
            Some(Exact {
                units: -5,
                scale: 2
            })
        );
        assert_eq!(Exact::parse("1e5"), None);
        assert_eq!(Exact::parse(".5"), None);
        assert_eq!(Exact::text(5, 3), "0.005");
    }
}
