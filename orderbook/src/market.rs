//! Markets and the exact integer grids their prices and sizes live on.
//!
//! At the API every price and size is a [`Decimal`]. Inside, a price is a
//! whole number of ticks and a size a whole number of lots, so matching is
//! integer arithmetic with no rounding dust. Conversions reject anything off
//! the grid instead of rounding it.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::reason::RejectReason;

/// The most bytes a market's name may have.
pub const MAX_SYMBOL_LEN: usize = 14;

/// A market's name, such as `BTC-USD`: 1 to [`MAX_SYMBOL_LEN`] bytes of
/// UTF-8 with no NUL. Held inline and `Copy`: every event carries one, and
/// a shared pointer would cost two atomic counts per event on the matching
/// path and a string comparison per command. Its 15 bytes keep the largest
/// event within the 128 bytes the compiler copies inline (see `Event`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbol {
    /// The name's bytes, then zeros.
    bytes: [u8; MAX_SYMBOL_LEN],
    len: u8,
}

/// A market name that cannot be a [`Symbol`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("a market symbol must not be empty or blank")]
    Empty,
    #[error("a market symbol is at most {MAX_SYMBOL_LEN} bytes, not {0}")]
    TooLong(usize),
    #[error("a market symbol must not contain a NUL character")]
    Nul,
}

impl Symbol {
    pub fn new(name: &str) -> Result<Self, SymbolError> {
        let src = name.as_bytes();
        if name.trim().is_empty() {
            return Err(SymbolError::Empty);
        }
        if src.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong(src.len()));
        }
        if src.contains(&0) {
            return Err(SymbolError::Nul);
        }
        let mut bytes = [0; MAX_SYMBOL_LEN];
        bytes[..src.len()].copy_from_slice(src);
        Ok(Symbol {
            bytes,
            len: src.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only `new` fills the bytes, from a `&str`, so they are UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(SymbolVisitor)
    }
}

/// Reads a symbol from a string without allocating a copy of it.
struct SymbolVisitor;

impl serde::de::Visitor<'_> for SymbolVisitor {
    type Value = Symbol;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a market symbol of 1 to {MAX_SYMBOL_LEN} bytes")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Symbol, E> {
        Symbol::new(name).map_err(E::custom)
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
    #[error(transparent)]
    Symbol(#[from] SymbolError),
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
    ///
    /// Inlined: it runs for every price and quantity the book sees, and in
    /// the common case (everything fits in u64, so no u128 division, a
    /// library call) it is a multiply and at most one division. A unit of
    /// one (a power of ten, as most grids are) needs no division at all.
    #[inline(always)]
    fn count(self, d: Decimal) -> Option<u128> {
        let s = d.scale();
        if let (Ok(m), Ok(unit)) = (
            u64::try_from(d.mantissa().unsigned_abs()),
            u64::try_from(self.mantissa),
        ) && s <= self.scale
            && let Some(at_scale) = POW10
                .get((self.scale - s) as usize)
                .and_then(|p| m.checked_mul(*p))
        {
            if unit == 1 {
                return Some(u128::from(at_scale));
            }
            return at_scale
                .is_multiple_of(unit)
                .then(|| u128::from(at_scale / unit));
        }
        self.count_wide(d)
    }

    /// [`Unit::count`] in u128, for what does not fit the fast path.
    #[cold]
    #[inline(never)]
    fn count_wide(self, d: Decimal) -> Option<u128> {
        let m = d.mantissa().unsigned_abs();
        let s = d.scale();
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
    #[inline]
    fn decimal(self, n: u128) -> Decimal {
        // Fast path: the value fits in u64 (every price and quantity the
        // book's limits allow at a grid of ordinary precision).
        if let (Ok(n), Ok(unit)) = (u64::try_from(n), u64::try_from(self.mantissa))
            && let Some(mut small) = n.checked_mul(unit)
        {
            let mut scale = self.scale;
            while scale > 0 && small != 0 && small.is_multiple_of(10) {
                small /= 10;
                scale -= 1;
            }
            // The scale is at most the unit's, which a Decimal held.
            return Decimal::from_parts(small as u32, (small >> 32) as u32, 0, false, scale);
        }
        self.decimal_wide(n)
    }

    /// [`Unit::decimal`] in u128, for what does not fit the fast path.
    #[cold]
    #[inline(never)]
    fn decimal_wide(self, n: u128) -> Decimal {
        let Some(mut m) = n.checked_mul(self.mantissa) else {
            return Decimal::MAX;
        };
        let mut scale = self.scale;
        while scale > 0 && m.is_multiple_of(10) {
            m /= 10;
            scale -= 1;
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
        let symbol = Symbol::new(&spec.symbol)?;
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
            symbol,
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
        if !price.is_sign_positive() || price.is_zero() {
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
        if !quantity.is_sign_positive() || quantity.is_zero() {
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
        if !amount.is_sign_positive() || amount.is_zero() {
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
    fn a_symbol_holds_its_name_inline_and_refuses_what_does_not_fit() {
        let s = Symbol::new("BTC-USD").unwrap();
        assert_eq!(s.as_str(), "BTC-USD");
        assert_eq!(s.to_string(), "BTC-USD");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""BTC-USD""#);
        assert_eq!(serde_json::from_str::<Symbol>(r#""BTC-USD""#).unwrap(), s);
        let longest = "A".repeat(MAX_SYMBOL_LEN);
        assert_eq!(Symbol::new(&longest).unwrap().as_str(), longest);
        let long = "A".repeat(MAX_SYMBOL_LEN + 1);
        assert_eq!(
            Symbol::new(&long),
            Err(SymbolError::TooLong(MAX_SYMBOL_LEN + 1))
        );
        assert_eq!(Symbol::new(" "), Err(SymbolError::Empty));
        assert_eq!(Symbol::new("A\0B"), Err(SymbolError::Nul));
        let json = format!("\"{long}\"");
        let err = serde_json::from_str::<Symbol>(&json).unwrap_err();
        assert!(err.to_string().contains("at most 14 bytes"), "{err}");
        // Escaped JSON strings read too, multi-byte names count bytes.
        assert_eq!(
            serde_json::from_str::<Symbol>(r#""\u00c9TH-USD""#)
                .unwrap()
                .as_str(),
            "ÉTH-USD"
        );
        let spec = MarketSpec {
            symbol: long,
            ..btc().spec
        };
        assert_eq!(
            Market::new(spec),
            Err(MarketError::Symbol(SymbolError::TooLong(15)))
        );
    }

    #[test]
    fn symbols_sort_as_their_names_do() {
        let mut names = ["BTC-USD", "BTC", "BTC-EUR", "ETH-USD", "AB", "B"];
        let mut symbols: Vec<Symbol> = names.iter().map(|n| Symbol::new(n).unwrap()).collect();
        names.sort();
        symbols.sort();
        let sorted: Vec<&str> = symbols.iter().map(Symbol::as_str).collect();
        assert_eq!(sorted, names);
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
