//! The exchange's money rules that come from configuration: fees and the
//! demo-funds faucet.

use std::collections::BTreeMap;

use orderbook::{Event, Side, TradeFees};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Whether an order's side of a trade rested on the book or came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Maker,
    Taker,
}

/// Fee rates as fractions of what each side receives (0.001 = 0.1 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fees {
    pub maker: Decimal,
    pub taker: Decimal,
}

/// Fees are cut to this many decimal places, rounding towards zero, so a
/// fee is never more than the rate says.
pub const FEE_DECIMALS: u32 = 8;

impl Fees {
    pub fn rate(&self, role: Role) -> Decimal {
        match role {
            Role::Maker => self.maker,
            Role::Taker => self.taker,
        }
    }

    /// The fee on an amount received in a role.
    pub fn fee(&self, role: Role, received: Decimal) -> Decimal {
        (received * self.rate(role))
            .round_dp_with_strategy(FEE_DECIMALS, RoundingStrategy::ToZero)
            .normalize()
    }

    /// Writes into a trade the fees its two sides pay at these rates, each
    /// on what that side receives (the buyer base, the seller quote). The
    /// book decides trades without fees; the exchange stamps them before
    /// the trade is written, so the log says what was charged whatever
    /// the rates are later. Any other event, or a trade that has its
    /// fees, is left as it is.
    pub fn stamp(&self, event: &mut Event) {
        let Event::TradeExecuted(t) = event else {
            return;
        };
        if t.fees.is_some() {
            return;
        }
        let quote = (t.price * t.quantity).normalize();
        let (maker_gets, taker_gets) = match t.taker_side {
            Side::Buy => (quote, t.quantity),
            Side::Sell => (t.quantity, quote),
        };
        t.fees = Some(Box::new(TradeFees {
            maker: self.fee(Role::Maker, maker_gets),
            taker: self.fee(Role::Taker, taker_gets),
        }));
    }

    /// Rates must be in `[0, 1)` so a fee never eats the whole fill.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("maker", self.maker), ("taker", self.taker)] {
            if rate < Decimal::ZERO || rate >= Decimal::ONE {
                return Err(format!(
                    "{name} fee rate {rate} must be at least 0 and below 1"
                ));
            }
        }
        Ok(())
    }
}

impl Default for Fees {
    fn default() -> Self {
        Fees {
            maker: Decimal::new(1, 3),
            taker: Decimal::new(2, 3),
        }
    }
}

/// What one faucet claim credits in one asset, and the most an account can
/// ever receive of it from the faucet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetGrant {
    pub amount: Decimal,
    pub limit: Decimal,
}

/// The faucet's grants by asset.
pub type Faucet = BTreeMap<String, FaucetGrant>;
