//! Markets and the exact integer grids their prices and sizes live on.
//!
//! At the API every price and size is a [`Decimal`]. Inside, a price is a
//! whole number of ticks and a size a whole number of lots, so matching is
//! integer arithmetic with no rounding dust. Conversions reject anything off
//! the grid instead of rounding it.

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::reason::RejectReason;

/// A market's name, such as `BTC-USD`. Cheap to clone: events carry it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(Arc<str>);

impl Symbol {
    pub fn new(name: &str) -> Self {
        Symbol(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Prices above this many ticks are rejected as absurd.
pub const MAX_TICKS: u64 = 1_000_000_000_000_000;
/// Sizes above this many lots are rejected as absurd.
pub const MAX_LOTS: u64 = 1_000_000_000_000_000;
/// The largest mantissa an order's value (price × quantity, or a quote
/// amount) may have: 28 digits, which `rust_decimal` holds exactly and can
/// add a few of without overflowing (its limit is 2^96, about 7.9e28).
/// `MAX_TICKS × MAX_LOTS` alone would allow 1e36.
const MAX_VALUE_MANTISSA: u128 = 10u128.pow(28) - 1;

/// A market definition as configured: what trades, and on which grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSpec {
    pub symbol: String,
    /// The asset bought and sold, e.g. `BTC`.
    pub base: String,
    /// The asset prices are quoted in, e.g. `USD`.
    pub quote: String,
    /// Every price is a whole multiple of this.
    pub tick_size: Decimal,
    /// Every base quantity is a whole multiple of this.
    pub lot_size: Decimal,
    /// The smallest base quantity an order may ask for.
    pub min_quantity: Decimal,
}

/// Why a market definition cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    #[error("market symbol must not be empty")]
    EmptySymbol,
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
    #[error("tick size and lot size have too many decimal places together (at most 28)")]
    TooPrecise,
    #[error("minimum quantity must be a whole number of lots")]
    MinimumOffLot,
}

/// A positive decimal unit as an exact integer mantissa and scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unit {
    mantissa: u128,
    scale: u32,
}

impl Unit {
    fn of(d: Decimal) -> Unit {
        let d = d.normalize();
        Unit {
            mantissa: d.mantissa().unsigned_abs(),
            scale: d.scale(),
        }
    }

    /// How many whole units make `d`; `None` when `d` is off the grid.
    fn count(self, d: Decimal) -> Option<u128> {
        let m = d.mantissa().unsigned_abs();
        let s = d.scale();
        // Fast path: everything fits in u64, where division is cheap (u128
        // division is a library call, and this runs for every price and
        // quantity the book sees).
        if let (Ok(m), Ok(unit)) = (u64::try_from(m), u64::try_from(self.mantissa))
            && s <= self.scale
            && let Some(at_scale) = POW10
                .get((self.scale - s) as usize)
                .and_then(|p| m.checked_mul(*p))
        {
            return at_scale
                .is_multiple_of(unit)
                .then(|| u128::from(at_scale / unit));
        }
        // Bring `d` to the unit's scale exactly.
        let at_scale = if s <= self.scale {
            m.checked_mul(10u128.checked_pow(self.scale - s)?)?
        } else {
            let div = 10u128.checked_pow(s - self.scale)?;
            if !m.is_multiple_of(div) {
                return None;
            }
            m / div
        };
        at_scale
            .is_multiple_of(self.mantissa)
            .then(|| at_scale / self.mantissa)
    }

    /// `n` units as a decimal without trailing zeros.
    fn decimal(self, n: u128) -> Decimal {
        let Some(mut m) = n.checked_mul(self.mantissa) else {
            return Decimal::MAX;
        };
        let mut scale = self.scale;
        if let Ok(mut small) = u64::try_from(m) {
            while scale > 0 && small.is_multiple_of(10) && small != 0 {
                small /= 10;
                scale -= 1;
            }
            m = u128::from(small);
        } else {
            while scale > 0 && m.is_multiple_of(10) {
                m /= 10;
                scale -= 1;
            }
        }
        Decimal::try_from_i128_with_scale(m as i128, scale).unwrap_or(Decimal::MAX)
    }
}

/// Powers of ten that fit in a u64.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// A validated market with its grids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Market {
    pub symbol: Symbol,
    pub spec: MarketSpec,
    tick: Unit,
    lot: Unit,
    /// One lot at one tick: the smallest quote amount that can change hands.
    notional: Unit,
    /// The most notional units an order may be worth, so its value is an
    /// exact decimal of at most 28 digits.
    max_notional: u128,
    min_lots: u64,
}

impl Market {
    pub fn new(spec: MarketSpec) -> Result<Market, MarketError> {
        if spec.symbol.trim().is_empty() {
            return Err(MarketError::EmptySymbol);
        }
        for (name, v) in [
            ("tick size", spec.tick_size),
            ("lot size", spec.lot_size),
            ("minimum quantity", spec.min_quantity),
        ] {
            if v <= Decimal::ZERO {
                return Err(MarketError::NotPositive(name));
            }
        }
        let tick = Unit::of(spec.tick_size);
        let lot = Unit::of(spec.lot_size);
        let scale = tick.scale + lot.scale;
        if scale > 28 {
            return Err(MarketError::TooPrecise);
        }
        let notional = Unit {
            mantissa: tick.mantissa * lot.mantissa,
            scale,
        };
        let min_lots = lot
            .count(spec.min_quantity)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(MarketError::MinimumOffLot)?;
        Ok(Market {
            symbol: Symbol::new(&spec.symbol),
            spec,
            tick,
            lot,
            notional,
            max_notional: MAX_VALUE_MANTISSA / notional.mantissa,
            min_lots,
        })
    }

    /// A limit price in ticks, or why it is not acceptable.
    pub fn ticks(&self, price: Decimal) -> Result<u64, RejectReason> {
        if price <= Decimal::ZERO {
            return Err(RejectReason::PriceNotPositive);
        }
        let n = self.tick.count(price).ok_or(RejectReason::PriceOffTick)?;
        if n > MAX_TICKS as u128 {
            return Err(RejectReason::PriceTooHigh);
        }
        Ok(n as u64)
    }

    /// A base quantity in lots, or why it is not acceptable.
    pub fn lots(&self, quantity: Decimal) -> Result<u64, RejectReason> {
        if quantity <= Decimal::ZERO {
            return Err(RejectReason::QuantityNotPositive);
        }
        let n = self
            .lot
            .count(quantity)
            .ok_or(RejectReason::QuantityOffLot)?;
        if n > MAX_LOTS as u128 {
            return Err(RejectReason::QuantityTooLarge);
        }
        if n < self.min_lots as u128 {
            return Err(RejectReason::QuantityBelowMinimum);
        }
        Ok(n as u64)
    }

    /// A quote amount in notional units (one lot at one tick).
    pub fn notional_units(&self, amount: Decimal) -> Result<u128, RejectReason> {
        if amount <= Decimal::ZERO {
            return Err(RejectReason::QuoteAmountNotPositive);
        }
        let n = self
            .notional
            .count(amount)
            .ok_or(RejectReason::QuoteAmountOffGrid)?;
        if n > self.max_notional {
            return Err(RejectReason::QuoteAmountTooLarge);
        }
        Ok(n)
    }

    /// The most an order may be worth (price × quantity, or a quote
    /// amount).
    pub fn max_value(&self) -> Decimal {
        self.notional.decimal(self.max_notional)
    }

    /// Whether an order of `lots` at `ticks` is worth an exact decimal:
    /// refused at the edge, never rounded and never an overflow later.
    pub fn check_value(&self, ticks: u64, lots: u64) -> Result<(), RejectReason> {
        match u128::from(ticks) * u128::from(lots) > self.max_notional {
            true => Err(RejectReason::ValueTooLarge),
            false => Ok(()),
        }
    }

    pub fn price(&self, ticks: u64) -> Decimal {
        self.tick.decimal(ticks as u128)
    }

    pub fn quantity(&self, lots: u64) -> Decimal {
        self.lot.decimal(lots as u128)
    }

    pub fn quote_amount(&self, units: u128) -> Decimal {
        self.notional.decimal(units)
    }

    /// Exact conversion for events read back from the log. Events were made
    /// from valid commands, so a failure means the log is not this market's.
    pub(crate) fn event_ticks(&self, price: Decimal) -> u64 {
        self.tick.count(price).map_or(0, |n| n as u64)
    }

    pub(crate) fn event_lots(&self, quantity: Decimal) -> u64 {
        self.lot.count(quantity).map_or(0, |n| n as u64)
    }

    pub(crate) fn event_units(&self, amount: Decimal) -> u128 {
        self.notional.count(amount).unwrap_or(0)
    }

    pub fn min_lots(&self) -> u64 {
        self.min_lots
    }

    /// The markets the exchange lists out of the box.
    pub fn defaults() -> Vec<Market> {
        [
            ("BTC-USD", "BTC", "USD", "0.01", "0.00001", "0.0001"),
            ("ETH-USD", "ETH", "USD", "0.01", "0.0001", "0.001"),
        ]
        .into_iter()
        .map(|(symbol, base, quote, tick, lot, min)| {
            Market::new(MarketSpec {
                symbol: symbol.into(),
                base: base.into(),
                quote: quote.into(),
                tick_size: tick.parse().expect("literal decimal"),
                lot_size: lot.parse().expect("literal decimal"),
                min_quantity: min.parse().expect("literal decimal"),
            })
            .expect("built-in market is valid")
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn btc() -> Market {
        Market::defaults().remove(0)
    }

    #[test]
    fn prices_on_the_tick_grid_convert_exactly() {
        let m = btc();
        assert_eq!(m.ticks(d("1880.5")), Ok(188_050));
        assert_eq!(m.ticks(d("1880.50000")), Ok(188_050));
        assert_eq!(m.price(188_050), d("1880.5"));
    }

    #[test]
    fn off_grid_zero_negative_and_absurd_inputs_are_rejected() {
        let m = btc();
        assert_eq!(m.ticks(d("1880.005")), Err(RejectReason::PriceOffTick));
        assert_eq!(m.ticks(d("0")), Err(RejectReason::PriceNotPositive));
        assert_eq!(m.ticks(d("-1")), Err(RejectReason::PriceNotPositive));
        assert_eq!(
            m.ticks(d("99999999999999999")),
            Err(RejectReason::PriceTooHigh)
        );
        assert_eq!(m.lots(d("0.000001")), Err(RejectReason::QuantityOffLot));
        assert_eq!(
            m.lots(d("0.00005")),
            Err(RejectReason::QuantityBelowMinimum)
        );
        assert_eq!(m.lots(d("0")), Err(RejectReason::QuantityNotPositive));
        assert_eq!(
            m.lots(d("100000000000000000000")),
            Err(RejectReason::QuantityTooLarge)
        );
        assert_eq!(m.lots(d("0.5")), Ok(50_000));
    }

    #[test]
    fn quote_amounts_count_in_one_lot_at_one_tick() {
        let m = btc();
        // 0.01 USD * 0.00001 BTC = 1e-7 USD per unit.
        assert_eq!(m.notional_units(d("1000")), Ok(10_000_000_000));
        assert_eq!(
            m.notional_units(d("0.00000001")),
            Err(RejectReason::QuoteAmountOffGrid)
        );
        assert_eq!(m.quote_amount(10_000_000_000), d("1000"));
    }

    #[test]
    fn bad_market_definitions_are_refused() {
        let mut spec = btc().spec;
        spec.min_quantity = d("0.000015");
        assert_eq!(Market::new(spec.clone()), Err(MarketError::MinimumOffLot));
        spec.tick_size = d("0");
        assert_eq!(
            Market::new(spec),
            Err(MarketError::NotPositive("tick size"))
        );
    }
}
