//! What orders cost and what trades move: the arithmetic of money that
//! the ledger's fold, the decisions before the book and the invariant
//! checks all share, so each rule is written once.

use orderbook::{Event, MarketSpec, Side, TradeExecuted};
use rust_decimal::Decimal;

use crate::config::Role;
use crate::event::TradeSettled;

/// What an open order must hold once amended by `event` (an
/// `OrderAmended`, or a `StopAmended` of an order held for its trigger):
/// `(asset, amount)`. A buy holds its new price times its new open
/// quantity in quote, a sell its new open quantity of base. `None` for any
/// other event, and for a held order whose cost the amendment cannot
/// change (a stop-market buy holds the quote amount it will spend).
pub fn amend_cost(market: &MarketSpec, event: &Event) -> Option<(String, Decimal)> {
    let (side, price, quantity) = match event {
        Event::OrderAmended(a) => (a.side, Some(a.price), Some(a.quantity)),
        Event::StopAmended(a) => (a.side, a.price, a.quantity),
        _ => return None,
    };
    let need = open_cost(side, price, quantity, None)?;
    let asset = match side {
        Side::Buy => &market.quote,
        Side::Sell => &market.base,
    };
    Some((asset.clone(), need))
}

/// What an open order (resting, or held for its trigger) must still hold:
/// a buy its limit price times its open quantity (a stop-market buy the
/// quote amount it will spend), a sell its open quantity. `None` when its
/// terms do not say (a market order).
pub fn open_cost(
    side: Side,
    price: Option<Decimal>,
    open_quantity: Option<Decimal>,
    quote_amount: Option<Decimal>,
) -> Option<Decimal> {
    match (side, price, open_quantity, quote_amount) {
        (Side::Buy, Some(price), Some(quantity), _) => Some((price * quantity).normalize()),
        (Side::Buy, None, None, Some(quote)) => Some(quote),
        (Side::Sell, _, Some(quantity), _) => Some(quantity),
        _ => None,
    }
}

/// What an order must hold before it reaches the book: `(asset, amount)`.
///
/// A limit buy holds its limit price times its quantity in quote; a sell
/// sized by quantity holds that quantity of base; a market buy sized by
/// quote holds that quote amount. A market order sized the other way holds
/// exactly what the book's decision (`decided`, the events the same command
/// gives on the same state) will trade.
pub fn order_cost(
    market: &MarketSpec,
    order: &orderbook::PlaceOrder,
    decided: &[Event],
) -> (String, Decimal) {
    let traded = || {
        decided.iter().filter_map(|e| match e {
            Event::TradeExecuted(t) if t.taker_order_id == order.order_id => Some(t),
            _ => None,
        })
    };
    match (order.side, order.price, order.quantity, order.quote_amount) {
        (Side::Buy, Some(price), Some(quantity), _) => {
            (market.quote.clone(), (price * quantity).normalize())
        }
        (Side::Buy, _, _, Some(quote)) => (market.quote.clone(), quote),
        (Side::Buy, ..) => (
            market.quote.clone(),
            traded()
                .map(|t| t.price * t.quantity)
                .sum::<Decimal>()
                .normalize(),
        ),
        (Side::Sell, _, Some(quantity), _) => (market.base.clone(), quantity),
        (Side::Sell, ..) => (
            market.base.clone(),
            traded().map(|t| t.quantity).sum::<Decimal>().normalize(),
        ),
    }
}

/// The two sides of a trade as each account sees it: what it paid (out of
/// what its order held), received, and paid in fees (the trade's own; none
/// for a trade written before schema 3).
pub fn fills(market: &MarketSpec, revision: u64, t: &TradeExecuted) -> [TradeSettled; 2] {
    let quote_amount = (t.price * t.quantity).normalize();
    let fees = t.fees.as_deref().copied().unwrap_or(orderbook::TradeFees {
        maker: Decimal::ZERO,
        taker: Decimal::ZERO,
    });
    let side = |account, order_id, role, side, fee| {
        let (paid_asset, paid, received_asset, received) = match side {
            Side::Buy => (&market.quote, quote_amount, &market.base, t.quantity),
            Side::Sell => (&market.base, t.quantity, &market.quote, quote_amount),
        };
        TradeSettled {
            account,
            symbol: market.symbol.as_str().into(),
            trade_id: t.trade_id,
            order_id,
            role,
            side,
            price: t.price,
            quantity: t.quantity,
            paid_asset: paid_asset.as_str().into(),
            paid,
            received_asset: received_asset.as_str().into(),
            received,
            fee,
            market_revision: revision,
            at: t.executed_at,
        }
    };
    [
        side(
            t.maker_account,
            t.maker_order_id,
            Role::Maker,
            t.taker_side.opposite(),
            fees.maker,
        ),
        side(
            t.taker_account,
            t.taker_order_id,
            Role::Taker,
            t.taker_side,
            fees.taker,
        ),
    ]
}
